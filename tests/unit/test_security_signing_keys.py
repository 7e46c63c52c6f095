"""Bearer-token signing keys rotate without a restart: a JWKS (or one PEM key) chosen by kid,
read again when the file changes, the previous keys kept when the new file is bad."""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client import REGISTRY
from pydantic import ValidationError

from sanad.devstack import certs
from sanad.errors import Unauthenticated
from sanad.runtime import StartupError
from sanad.security.authenticate import Authenticator
from sanad.security.credentials import TokenVerifier
from sanad.security.jwks import KeyFileError, KeySet, parse_keys
from sanad.security.key_file import ReloadingKeys
from sanad.settings import ServerSettings
from tests.unit.security_echo import every_method, full_name, start_echo
from tests.unit.signing_keys import ROP, SigningKey, jwks
from tests.unit.test_security_settings import SAFE

LIST_AGENCIES = full_name(next(m for m in every_method() if m.name == "ListAgencies"))


def verifier(keys: KeySet | ReloadingKeys) -> TokenVerifier:
    return TokenVerifier(keys, "sanad-mesh", "sanad-mesh", 31 * 24 * 3600)


def replace(path: Path, data: bytes) -> None:
    """Write a file as operators and Kubernetes do: a new file renamed over the old one."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(data)
    os.replace(staged, path)


def pem(key: SigningKey) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Parsing


def test_make_certs_publishes_its_signing_key_as_pem_and_as_a_jwks_naming_the_tokens_kid(
    pki: Path,
) -> None:
    token = (pki / "tokens" / "admin.jwt").read_text().strip()
    kid = jwt.get_unverified_header(token)["kid"]
    listed = parse_keys((pki / "jwt-signing.jwks.json").read_bytes())
    assert [key.kid for key in listed.keys] == [kid]
    for name in ("jwt-signing.jwks.json", "jwt-signing.pub.pem"):
        keys = parse_keys((pki / name).read_bytes())
        assert verifier(keys).verify(token) == certs.EXAMPLES["admin"]


def test_a_pem_key_checks_tokens_with_or_without_a_kid() -> None:
    key = SigningKey()
    keys = parse_keys(pem(key))
    assert [k.kid for k in keys.keys] == [None]
    assert verifier(keys).verify(key.token(None)) == ROP
    assert verifier(keys).verify(key.named()) == ROP


def test_a_jwks_picks_the_key_each_token_names() -> None:
    old, new = SigningKey(), SigningKey()
    keys = parse_keys(jwks(old.jwk, new.jwk))
    assert verifier(keys).verify(old.named()) == ROP
    assert verifier(keys).verify(new.named()) == ROP
    with pytest.raises(Unauthenticated, match="its signature does not verify"):
        verifier(keys).verify(old.token(new.kid))  # names a key it was not signed with


def test_with_several_keys_a_token_must_name_its_kid() -> None:
    old, new = SigningKey(), SigningKey()
    with pytest.raises(Unauthenticated, match=r"names no key id \(kid\)"):
        verifier(parse_keys(jwks(old.jwk, new.jwk))).verify(old.token(None))
    assert verifier(parse_keys(jwks(old.jwk))).verify(old.token(None)) == ROP


def test_an_unknown_kid_is_refused_without_quoting_any_key() -> None:
    old, stranger = SigningKey(), SigningKey()
    with pytest.raises(Unauthenticated, match="unknown key id") as refused:
        verifier(parse_keys(jwks(old.jwk))).verify(stranger.named())
    message = str(refused.value)
    assert stranger.kid in message  # the kid is a public name: it tells an operator what is missing
    for secret in (old.jwk["x"], old.jwk["y"], old.pem.decode()):
        assert secret not in message


def test_a_kid_that_is_not_a_string_is_refused() -> None:
    key = SigningKey()
    with pytest.raises(Unauthenticated, match="bad bearer token"):
        verifier(parse_keys(jwks(key.jwk))).verify(forged({"alg": "ES256", "kid": 7}, None))


def test_keys_we_do_not_verify_with_are_skipped_beside_a_usable_one() -> None:
    key = SigningKey()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key)), "kid": "rsa"}
    encryption = {**SigningKey().jwk, "kid": "enc", "use": "enc"}
    p384 = {**p384_jwk(), "kid": "p384"}  # no alg: ES384 implied, which we do not accept
    keys = parse_keys(jwks(rsa_jwk, encryption, p384, key.jwk))
    assert [k.kid for k in keys.keys] == [key.kid]


def p384_jwk() -> dict[str, str]:
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    return jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)  # type: ignore[return-value]


def private_jwk() -> dict[str, str]:
    key = SigningKey()
    return {**key.jwk, "d": "c2VjcmV0LXNjYWxhcg"}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "neither a JWKS"),
        (b"not a key", "neither a JWKS"),
        (b"{not json", "not valid JSON"),
        (b'{"keys": {}}', "without a `keys` list"),
        (b"[]", "neither a JWKS"),
        (b'{"keys": []}', "without a usable ES256 key"),
        (b'{"keys": [7]}', "not a JSON object"),
        (jwks({**SigningKey().jwk, "alg": ["ES256"]}), "alg that is not a string"),
        (
            b'{"keys": ' + b"[" * 100_000,
            "not valid JSON",
        ),  # too deep for the parser: RecursionError
        (jwks({"kty": "oct", "k": "c2VjcmV0LXNjYWxhcg", "alg": "HS256"}), "secret key material"),
        (jwks(private_jwk()), "private or secret"),
        (jwks({**SigningKey().jwk, "alg": "HS256"}), "without a usable ES256 key"),
        (jwks({**SigningKey().jwk, "x": "AAAA"}), "not a valid ES256 public key"),
        (jwks({**p384_jwk(), "alg": "ES256"}), "ES256"),  # a key that does not fit its alg
        (jwks({**SigningKey().jwk, "kid": "a"}, {**SigningKey().jwk, "kid": "a"}), "repeated"),
        (jwks({**SigningKey().jwk, "kid": None}, SigningKey().jwk), "missing"),
        (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "readable public key"),
    ],
)
def test_a_file_without_a_usable_key_is_refused_and_never_quoted(
    data: bytes, complaint: str
) -> None:
    with pytest.raises(KeyFileError, match=complaint) as refused:
        parse_keys(data)
    assert "c2VjcmV0LXNjYWxhcg" not in str(refused.value)


def test_a_pem_key_of_another_kind_is_refused() -> None:
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match="not an ES256"):
        parse_keys(rsa_pem)


# Algorithm confusion: only the key's own asymmetric algorithm, whatever the header says.


def forged(header: dict[str, object], secret: bytes | None) -> str:
    """A token with any header, HMAC-signed with `secret` (or unsigned)."""

    def part(value: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    claims = {"sub": "rop", "role": "admin", "iss": "sanad-mesh", "aud": "sanad-mesh",
              "exp": 2**31 - 1, "iat": 2**31 - 600}  # fmt: skip
    signing_input = part(header) + b"." + part(claims)
    signature = b"" if secret is None else hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


@pytest.mark.parametrize("source", ["pem", "jwks"])
def test_hmac_signed_with_the_public_key_and_unsigned_tokens_are_refused(source: str) -> None:
    key = SigningKey()
    public = pem(key)
    keys = parse_keys(public if source == "pem" else jwks(key.jwk))
    secrets = (public, json.dumps(key.jwk).encode(), key.jwk["x"].encode())
    tokens = [forged({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, s) for s in secrets]
    tokens += [forged({"alg": alg, "kid": key.kid}, None) for alg in ("none", "None", "ES256")]
    for token in tokens:
        with pytest.raises(Unauthenticated, match="bad bearer token"):
            verifier(keys).verify(token)


# Reloading


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_new_key_is_taken_within_the_interval_and_a_removed_one_is_refused(
    tmp_path: Path, clock: Clock
) -> None:
    old, new = SigningKey(), SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(old.jwk))
    check = verifier(ReloadingKeys(str(path), 5.0, clock))
    assert check.verify(old.named()) == ROP
    replace(path, jwks(old.jwk, new.jwk))
    with pytest.raises(Unauthenticated, match="unknown key id"):
        check.verify(new.named())  # not looked at yet: the interval has not passed
    clock.now += 5.0
    assert check.verify(new.named()) == ROP
    assert check.verify(old.named()) == ROP  # still listed: still good
    path.write_bytes(jwks(new.jwk))  # rewritten in place this time
    clock.now += 5.0
    assert check.verify(new.named()) == ROP
    with pytest.raises(Unauthenticated, match="unknown key id"):
        check.verify(old.named())


def test_a_pem_key_file_is_read_again_too(tmp_path: Path, clock: Clock) -> None:
    old, new = SigningKey(), SigningKey()
    path = tmp_path / "key.pem"
    path.write_bytes(pem(old))
    check = verifier(ReloadingKeys(str(path), 5.0, clock))
    replace(path, pem(new))
    clock.now += 5.0
    assert check.verify(new.token(None)) == ROP
    with pytest.raises(Unauthenticated, match="its signature does not verify"):
        check.verify(old.token(None))


def test_a_kubernetes_secret_update_by_symlink_swap_is_seen(tmp_path: Path, clock: Clock) -> None:
    old, new = SigningKey(), SigningKey()
    # The layout the kubelet mounts: jwks.json -> ..data/jwks.json, ..data -> ..<timestamp>.
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "jwks.json").write_bytes(jwks(old.jwk))
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "jwks.json").symlink_to("..data/jwks.json")
    check = verifier(ReloadingKeys(str(tmp_path / "jwks.json"), 2.0, clock))
    assert check.verify(old.named()) == ROP
    (tmp_path / "..v2").mkdir()
    (tmp_path / "..v2" / "jwks.json").write_bytes(jwks(new.jwk))
    (tmp_path / "..data_tmp").symlink_to("..v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    (tmp_path / "..v1" / "jwks.json").unlink()
    (tmp_path / "..v1").rmdir()
    clock.now += 2.0
    assert check.verify(new.named()) == ROP
    with pytest.raises(Unauthenticated, match="unknown key id"):
        check.verify(old.named())


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        b"{half a docum",
        b'{"keys": []}',
        b"-----BEGIN PUBLIC KEY-----\n",
        jwks({**SigningKey().jwk, "alg": {"ES256": 1}}),
        b'{"keys": ' + b"[" * 100_000,
    ],
)
def test_a_broken_file_keeps_the_previous_keys_logs_and_counts(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture, broken: bytes
) -> None:
    key = SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(key.jwk))
    check = verifier(ReloadingKeys(str(path), 1.0, clock))
    failed = metric("sanad_auth_jwt_key_reloads_total", {"outcome": "failed"})
    replace(path, broken)
    clock.now += 1.0
    with caplog.at_level(logging.ERROR, "sanad.security"):
        assert check.verify(key.named()) == ROP
    assert "previous 1 key(s) stay in use" in caplog.text
    assert key.jwk["x"] not in caplog.text
    assert metric("sanad_auth_jwt_key_file_failing") == 1
    assert metric("sanad_auth_jwt_key_reloads_total", {"outcome": "failed"}) == failed + 1
    clock.now += 1.0
    check.verify(key.named())  # the same broken file is not read (nor logged) again
    assert metric("sanad_auth_jwt_key_reloads_total", {"outcome": "failed"}) == failed + 1
    replace(path, jwks(key.jwk))
    clock.now += 1.0
    assert check.verify(key.named()) == ROP
    assert metric("sanad_auth_jwt_key_file_failing") == 0
    assert metric("sanad_auth_jwt_keys") == 1


def test_a_removed_file_keeps_the_keys_until_it_is_back(tmp_path: Path, clock: Clock) -> None:
    old, new = SigningKey(), SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(old.jwk))
    check = verifier(ReloadingKeys(str(path), 1.0, clock))
    path.unlink()
    clock.now += 1.0
    assert check.verify(old.named()) == ROP
    assert metric("sanad_auth_jwt_key_file_failing") == 1
    path.write_bytes(jwks(new.jwk))
    clock.now += 1.0
    assert check.verify(new.named()) == ROP


def test_verification_between_checks_does_not_touch_the_file(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(key.jwk))
    check = verifier(ReloadingKeys(str(path), 5.0, clock))
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    for _ in range(100):
        check.verify(key.named())
    assert stats == []
    clock.now += 5.0
    check.verify(key.named())
    assert stats == [str(path)]


@pytest.mark.parametrize("data", [b'{"keys": []}', b"", b"nonsense"])
def test_a_key_file_without_a_usable_key_stops_the_process_at_start(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(data)
    with pytest.raises(StartupError, match=f"^SANAD_AUTH_JWT_PUBLIC_KEY_FILE: {path}: "):
        Authenticator.from_settings(ServerSettings(auth_jwt_public_key_file=str(path)))


def test_a_key_file_that_cannot_be_read_stops_the_process_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(
        StartupError,
        match=f"^SANAD_AUTH_JWT_PUBLIC_KEY_FILE: cannot read {missing}: No such file or directory$",
    ):
        Authenticator.from_settings(ServerSettings(auth_jwt_public_key_file=str(missing)))


# Settings


@pytest.mark.parametrize("every_s", [0, -1, float("nan"), float("inf")])
def test_the_reload_interval_is_a_number_of_seconds_above_zero(every_s: float) -> None:
    with pytest.raises(ValidationError, match="SANAD_AUTH_JWT_KEYS_RELOAD_S"):
        ServerSettings(auth_jwt_keys_reload_s=every_s)


def test_production_refuses_a_key_file_looked_at_less_than_every_five_minutes() -> None:
    ServerSettings(**{**SAFE, "auth_jwt_keys_reload_s": 300})
    with pytest.raises(ValidationError, match="a retired key must stop working soon"):
        ServerSettings(**{**SAFE, "auth_jwt_keys_reload_s": 301})


# Through a real server


async def test_a_server_takes_a_rotated_key_without_a_restart(tmp_path: Path) -> None:
    old, new = SigningKey(), SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(old.jwk))
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode="required",
        auth_jwt_public_key_file=str(path),
        auth_jwt_keys_reload_s=0.05,
    )
    running = await start_echo(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:

            async def answer(token: str) -> str:
                metadata = (("authorization", f"Bearer {token}"),)
                try:
                    await channel.unary_unary(LIST_AGENCIES)(b"", metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as error:
                    return f"{error.code().name}: {error.details()}"
                return "OK"

            assert await answer(old.named()) == "OK"
            assert (await answer(new.named())).startswith(
                "UNAUTHENTICATED: bad bearer token: unknown key id"
            )
            replace(path, jwks(old.jwk, new.jwk))
            await asyncio.sleep(0.1)  # past the 0.05 s interval
            assert await answer(new.named()) == "OK"
            assert await answer(old.named()) == "OK"
            replace(path, jwks(new.jwk))
            await asyncio.sleep(0.1)  # past the 0.05 s interval
            assert await answer(new.named()) == "OK"
            assert (await answer(old.named())).startswith("UNAUTHENTICATED")
    finally:
        await running.stop(0)


def test_a_scrape_sees_the_file_as_it_is_without_any_token_verified(
    tmp_path: Path, clock: Clock
) -> None:
    key = SigningKey()
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(key.jwk))
    ReloadingKeys(str(path), 1.0, clock)
    replace(path, b"{half a docum")
    clock.now += 1.0
    assert metric("sanad_auth_jwt_key_file_failing") == 1  # the scrape looked, no call did
    replace(path, jwks(key.jwk, SigningKey().jwk))
    clock.now += 1.0
    assert metric("sanad_auth_jwt_key_file_failing") == 0
    assert metric("sanad_auth_jwt_keys") == 2
