"""Certificates and bearer tokens become identities; bad ones are UNAUTHENTICATED."""

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sanad.devstack import secure
from sanad.errors import RateLimited, Unauthenticated
from sanad.security import certs
from sanad.security.credentials import TokenVerifier, identity_from_certificate, issue_token
from sanad.security.identity import Identity, Role
from sanad.security.jwks import parse_keys
from sanad.security.limits import RateLimiter

ROP = Identity("rop-systems", Role.MINISTRY, agency_code="ROP")


def verifier(pki: Path) -> TokenVerifier:
    keys = parse_keys((pki / "jwt-signing.pub.pem").read_bytes())
    return TokenVerifier(keys, "sanad-mesh", "sanad-mesh", 31 * 24 * 3600)


def sign(pki: Path, identity: Identity, ttl_s: int = 60, audience: str = "sanad-mesh") -> str:
    key = (pki / "jwt-signing.key").read_bytes()
    return issue_token(key, identity, "sanad-mesh", audience, ttl_s)


def test_make_certs_writes_the_ca_services_clients_and_tokens(pki: Path) -> None:
    for name in ("ca", *certs.SERVICES, *certs.EXAMPLES):
        assert (pki / f"{name}.pem").exists()
        assert (pki / f"{name}.key").stat().st_mode & 0o077 == 0
    # A token is a credential as a key is: only its owner reads it, or lists them.
    assert (pki / "tokens").stat().st_mode & 0o077 == 0
    for name in certs.EXAMPLES:
        assert (pki / "tokens" / f"{name}.jwt").stat().st_mode & 0o077 == 0
    assert (pki / "jwt-signing.key").stat().st_mode & 0o077 == 0


def test_a_private_file_is_never_readable_by_others_and_replaces_one_that_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admin.jwt"
    path.write_text("old token, world-readable\n")
    path.chmod(0o644)

    certs.write_private(path, b"new token\n")

    assert path.read_bytes() == b"new token\n"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", list(certs.EXAMPLES))
def test_an_example_client_certificate_names_its_identity(pki: Path, name: str) -> None:
    assert identity_from_certificate((pki / f"{name}.pem").read_bytes()) == certs.EXAMPLES[name]


def test_a_service_certificate_is_a_service_identity(pki: Path) -> None:
    identity = identity_from_certificate((pki / "intake.pem").read_bytes())
    assert identity == Identity("intake", Role.SERVICE)


@pytest.mark.parametrize("name", list(certs.EXAMPLES))
def test_an_example_token_verifies_to_its_identity(pki: Path, name: str) -> None:
    token = (pki / "tokens" / f"{name}.jwt").read_text().strip()
    assert verifier(pki).verify(token) == certs.EXAMPLES[name]


def test_an_expired_token_is_refused(pki: Path) -> None:
    with pytest.raises(Unauthenticated, match="ExpiredSignature"):
        verifier(pki).verify(sign(pki, ROP, ttl_s=-120))


def test_a_token_for_another_audience_is_refused(pki: Path) -> None:
    with pytest.raises(Unauthenticated, match="InvalidAudience"):
        verifier(pki).verify(sign(pki, ROP, audience="someone-else"))


def test_a_token_signed_by_another_key_is_refused(pki: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token = issue_token(other, ROP, "sanad-mesh", "sanad-mesh", 60)
    with pytest.raises(Unauthenticated):
        verifier(pki).verify(token)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_tokens_are_refused(pki: Path, garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        verifier(pki).verify(garbage)


@pytest.mark.parametrize(
    "identity",
    [
        Identity("m", Role.MINISTRY),
        Identity("c", Role.CENTRE),
        Identity("b", Role.BATCH),
    ],
)
def test_a_credential_without_the_scope_its_role_needs_is_refused(
    pki: Path, identity: Identity
) -> None:
    with pytest.raises(Unauthenticated, match="names its"):
        verifier(pki).verify(sign(pki, identity))


def test_the_rate_limiter_refuses_past_the_burst_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    for _ in range(3):
        limiter.take("centre:a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("centre:a")
    assert refused.value.retry_after_s == pytest.approx(0.5)
    limiter.take("centre:b")  # buckets are per identity
    now[0] = 0.5
    limiter.take("centre:a")


def test_a_zero_rate_turns_the_limiter_off() -> None:
    limiter = RateLimiter(0, 1)
    for _ in range(100):
        limiter.take("admin:x")


def test_a_token_that_lives_longer_than_the_limit_is_refused(pki: Path) -> None:
    """A leaked token is good until its exp: one signed for ten years would be good for ten."""
    ten_years = sign(pki, ROP, ttl_s=10 * 365 * 24 * 3600)
    with pytest.raises(Unauthenticated, match="lives longer than 2678400 s"):
        verifier(pki).verify(ten_years)
    verifier(pki).verify(sign(pki, ROP, ttl_s=30 * 24 * 3600))  # make certs' tokens pass


def test_a_token_without_iat_is_judged_from_now(pki: Path) -> None:
    key = (pki / "jwt-signing.key").read_bytes()
    later = int(time.time()) + 60 * 24 * 3600
    claims = {"sub": "rop", "role": "ministry", "agency": "ROP", "iss": "sanad-mesh",
              "aud": "sanad-mesh", "exp": later}  # fmt: skip
    with pytest.raises(Unauthenticated, match="lives longer"):
        verifier(pki).verify(jwt.encode(claims, key, algorithm="ES256"))


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--role", "centre", "--subject", "desk"], "a centre credential names its centre"),
        (["--role", "ministry", "--subject", "rop"], "a ministry credential names its agency"),
        (["--role", "centre", "--subject", "", "--center", "C1"], "credential without a subject"),
        (["--role", "operator", "--subject", "a/b"], "is not a file name"),
        (["--role", "operator", "--subject", "ca"], "names a file of the dev PKI itself"),
        (["--role", "admin", "--subject", "x", "--name", "intake"], "a file of the dev PKI"),
    ],
)
def test_a_client_the_services_would_refuse_is_not_issued(
    pki: Path, arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        certs.main(["--out", str(pki), "client", *arguments])
    assert refused.value.code == 2
    assert complaint in capsys.readouterr().err


def test_a_client_without_a_dev_ca_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["client", "--role", "centre", "--subject", "desk", "--center", "C1"]
    code = certs.main(["--out", str(tmp_path / "none"), *arguments])
    assert code == 1
    assert (
        capsys.readouterr().err
        == f"certs: no dev CA in {tmp_path / 'none'}/: run `make certs` first\n"
    )


def test_a_pki_made_before_secrets_were_owner_only_is_narrowed_when_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    # As sessions before 17 left it: folders and secrets at the umask's modes.
    for path in (out, out / "tokens"):
        path.chmod(0o755)
    for path in (out / "admin.key", out / "tokens" / "admin.jwt", out / "jwt-signing.key"):
        path.chmod(0o644)

    assert certs.main(["--out", str(out)]) == 0

    assert "keeping it" in capsys.readouterr().out
    for path in (out, out / "tokens"):
        assert path.stat().st_mode & 0o777 == 0o700
    for path in (out / "admin.key", out / "tokens" / "admin.jwt", out / "jwt-signing.key"):
        assert path.stat().st_mode & 0o777 == 0o600
    # Certificates and public keys are not secrets: left readable.
    assert (out / "ca.pem").stat().st_mode & 0o044 == 0o044


def test_make_run_narrows_a_kept_pki_too(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    (out / "tokens" / "operator.jwt").chmod(0o644)

    secure.ensure_pki(out)

    assert (out / "tokens" / "operator.jwt").stat().st_mode & 0o777 == 0o600
