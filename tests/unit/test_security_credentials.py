"""Certificates and bearer tokens become identities; bad ones are UNAUTHENTICATED."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sanad.devstack import certs, secure
from sanad.errors import RateLimited, Unauthenticated
from sanad.security.admission import Admission
from sanad.security.credentials import (
    AGENCY_URI,
    CENTER_URI,
    TokenVerifier,
    identity_from_certificate,
    issue_token,
)
from sanad.security.identity import Identity, Role
from sanad.security.jwks import parse_keys
from sanad.security.limits import RateLimiter
from sanad.settings import AuthMode, ServerSettings
from tests.unit.security_echo import start_echo

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
    with pytest.raises(Unauthenticated, match=r"bad bearer token: it has expired$"):
        verifier(pki).verify(sign(pki, ROP, ttl_s=-120))


def test_a_token_for_another_audience_is_refused(pki: Path) -> None:
    with pytest.raises(Unauthenticated, match=r"it is not meant for this service \(aud\)"):
        verifier(pki).verify(sign(pki, ROP, audience="someone-else"))


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ("desk\u202e1", "control, invisible or look-alike"),
        ("a\nb", "control, invisible or look-alike"),
        ("\u200b", "control, invisible or look-alike"),
        ("alice\u200b", "control, invisible or look-alike"),
        (" alice ", "control, invisible or look-alike"),
        ("admin\u00a0", "control, invisible or look-alike"),
        ("s" * 257, "1 to 256 characters"),
        # The revoked-tokens file reads these "#" as comments: "ops #2" could not be revoked,
        # and its line revoked "ops" (security hunt).
        ("ops #2", "which no revocation could name"),
        ("#ops", "which no revocation could name"),
    ],
)
def test_a_token_whose_subject_would_not_show_as_it_is_is_refused(
    pki: Path, subject: str, why: str
) -> None:
    # The subject names the caller in the audit trail and the logs (fuzz helper: NUL, newlines,
    # a right-to-left override and 5,000 characters went in as they were).
    with pytest.raises(Unauthenticated, match=why):
        verifier(pki).verify(sign(pki, replace(ROP, subject=subject)))


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


@pytest.mark.parametrize("gone", [["ca.key"], ["jwt-signing.key"], ["ca.key", "jwt-signing.key"]])
def test_a_dev_ca_without_its_keys_says_how_to_make_a_new_one_and_writes_nothing(
    tmp_path: Path, gone: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # `make certs` keeps the CA it finds, and the advice to run it went round in a circle;
    # without jwt-signing.key a certificate was written with no token beside it.
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    for name in gone:
        (out / name).unlink()
    arguments = ["client", "--role", "centre", "--subject", "desk", "--center", "C1"]

    code = certs.main(["--out", str(out), *arguments])

    assert code == 1
    assert capsys.readouterr().err == (
        f"certs: {out}/ has a dev CA without {' and '.join(gone)}, so it can issue no client:"
        f" `python -m sanad.devstack.certs --out {out} --force` makes a new dev PKI, replacing"
        " every certificate and token there\n"
    )
    assert not (out / "desk.pem").exists()
    certs.main(["--out", str(out), "--force"])
    assert certs.main(["--out", str(out), *arguments]) == 0


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


def test_make_certs_writes_the_pki_where_make_run_looks_for_it(tmp_path: Path) -> None:
    # Relative, as in the README's settings table: both resolve it against the working folder.
    env = {**os.environ, "SANAD_DEVSTACK_CERTS": "elsewhere/pki"}
    made = subprocess.run(
        [sys.executable, "-m", "sanad.devstack.certs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "elsewhere" / "pki"
    assert (folder / "ca.pem").exists()
    assert (folder / "tokens" / "admin.jwt").exists()
    assert not (tmp_path / ".certs").exists()


def signed_claims(pki: Path, **claims: object) -> str:
    """A token signed by the dev key with these claims over a valid ministry identity's."""
    now = int(time.time())
    base: dict[str, object] = {"sub": "rop", "role": "ministry", "agency": "ROP",
                               "iss": "sanad-mesh", "aud": "sanad-mesh", "iat": now,
                               "exp": now + 600}  # fmt: skip
    base.update(claims)
    return jwt.encode(base, (pki / "jwt-signing.key").read_bytes(), algorithm="ES256")


def certificate(pki: Path, role: str, *uris: str) -> bytes:
    """A client certificate the dev CA signed, naming these scope URIs."""
    _, issued = certs.issue(certs.load_authority(pki), "desk", role, (), uris)
    return issued.public_bytes(serialization.Encoding.PEM)


STRAY = [
    ({"role": "centre", "center": "C1", "agency": "ROP"}, "a centre credential names no agency"),
    ({"role": "batch", "center": "C1", "agency": "ROP"}, "a batch credential names no agency"),
    ({"role": "ministry", "agency": "ROP", "center": "C1"}, "a ministry credential names no cent"),
    ({"role": "admin", "agency": "ROP"}, "an admin credential names no agency"),
    ({"role": "operator", "center": "C1"}, "an operator credential names no centre"),
]


@pytest.mark.parametrize(("claims", "complaint"), STRAY)
def test_a_token_naming_a_scope_its_role_does_not_carry_is_refused(
    pki: Path, claims: dict[str, str], complaint: str
) -> None:
    token = signed_claims(pki, **{"sub": "desk", "agency": "", **claims})
    with pytest.raises(Unauthenticated, match=complaint):
        verifier(pki).verify(token)


@pytest.mark.parametrize(
    ("role", "uris", "complaint"),
    [
        ("centre", [AGENCY_URI + "ROP", CENTER_URI + "C1"], "a centre credential names no agency"),
        ("ministry", [AGENCY_URI + "ROP", CENTER_URI + "C1"], "names no centre"),
        ("service", [CENTER_URI + "C1"], "a service credential names no centre"),
        ("centre", [CENTER_URI + "C1", CENTER_URI + "C2"], "names more than one centre"),
        # A URN's scheme and namespace in another case are the same URN (security hunt: the
        # second centre went unseen and the certificate acted for the first).
        ("centre", [CENTER_URI + "C1", CENTER_URI.upper() + "C2"], "names more than one centre"),
    ],
)
def test_a_certificate_naming_a_scope_its_role_does_not_carry_is_refused(
    pki: Path, role: str, uris: list[str], complaint: str
) -> None:
    with pytest.raises(Unauthenticated, match=complaint):
        identity_from_certificate(certificate(pki, role, *uris))


def test_make_certs_does_not_issue_a_centre_naming_an_agency(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--role", "centre", "--subject", "desk", "--center", "C1", "--agency", "ROP"]
    with pytest.raises(SystemExit):
        certs.main(["--out", str(pki), "client", *arguments])
    assert "a centre credential names no agency" in capsys.readouterr().err


def test_an_identity_acts_under_its_own_roles_scope_alone() -> None:
    # Built by hand (credentials refuse a stray scope): the actor still ignores it, so two
    # desks named alike at two centres never share a rate bucket or request ids.
    at = [Identity("desk", Role.CENTRE, agency_code="ROP", center_id=c) for c in ("C1", "C2")]
    assert [identity.actor for identity in at] == ["centre:desk@C1", "centre:desk@C2"]
    assert Identity("rop", Role.MINISTRY, "ROP", center_id="C1").actor == "ministry:rop@ROP"
    assert Identity("ops", Role.OPERATOR, "ROP", "C1").actor == "operator:ops"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", lambda now: str(now + 600)),
        ("iat", str),
        ("nbf", str),
        ("iat", lambda _: True),
    ],
    ids=["exp as text", "iat as text", "nbf as text", "iat as a boolean"],
)
def test_a_token_whose_times_are_not_numbers_is_refused(
    pki: Path, claim: str, value: Callable[[int], object]
) -> None:
    # The time is read as the test runs, not as the suite is collected: an exp ten minutes on
    # from collection had passed by the time a long run reached this test, and the token was
    # refused as expired before its type was looked at.
    claims = {claim: value(int(time.time()))}
    with pytest.raises(Unauthenticated, match="must be a number"):
        verifier(pki).verify(signed_claims(pki, **claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "centre", "agency": "", "center": None},
        {"role": "centre", "agency": "", "center": 0},
        {"role": "centre", "agency": "", "center": ["C1"]},
        {"agency": None},
        {"agency": False},
        {"role": 3},
    ],
    ids=["null centre", "centre 0", "centre as a list", "null agency", "agency false", "role 3"],
)
def test_a_token_whose_scope_is_not_text_is_refused(pki: Path, claims: dict[str, object]) -> None:
    # str() made a centre "None" or "0" of these: an identity no token named.
    with pytest.raises(Unauthenticated, match="must be text"):
        verifier(pki).verify(signed_claims(pki, **claims))


def test_a_token_whose_times_are_fractions_of_seconds_is_accepted(pki: Path) -> None:
    now = time.time()
    token = signed_claims(pki, iat=now, nbf=now, exp=now + 600.5)
    assert verifier(pki).verify(token) == Identity("rop", Role.MINISTRY, agency_code="ROP")


class Failing:
    """An authenticator whose check fails in a way none of its refusals names."""

    mode = AuthMode.REQUIRED

    def identify(self, context: object) -> Identity:
        raise TypeError("unsupported operand type(s) for -: 'str' and 'int'")


class Peer:
    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return "ipv4:10.0.0.7:51234"


def test_a_credential_check_failing_unexpectedly_is_unauthenticated_and_charged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admission = Admission(Failing(), RateLimiter(0.001, 2))  # type: ignore[arg-type]
    outcomes = []
    for _ in range(3):
        try:
            admission.identify(Peer())
        except (Unauthenticated, RateLimited) as error:
            outcomes.append(type(error).__name__)
    assert outcomes == ["Unauthenticated", "Unauthenticated", "RateLimited"]
    # Our own bug, or a library's: visible in the log with its traceback, once a charged call.
    logged = [r for r in caplog.records if r.name == "sanad.security"]
    assert len(logged) == 2
    assert all(r.exc_info and r.exc_info[0] is TypeError for r in logged)


async def test_a_token_with_exp_as_text_is_unauthenticated_and_pays_the_rate(pki: Path) -> None:
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode=AuthMode.REQUIRED,
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        rate_limit_per_s=1,
        rate_limit_burst=2,
    )
    token = signed_claims(pki, role="operator", agency="", exp=str(int(time.time()) + 600))
    running = await start_echo(settings)
    codes = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stats = channel.unary_unary("/sanad.v1.MetricsService/GetCenterStats")
            for _ in range(3):
                try:
                    await stats(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=5)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code().name)
    finally:
        await running.stop(0)
    assert codes == ["UNAUTHENTICATED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED"]


@pytest.mark.parametrize("name", ["admin", "operator", "centre"])
def test_a_client_is_not_issued_over_one_already_issued_without_force(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: `client --role operator --subject admin` replaced the example admin's certificate,
    # key and token, the ones sanadctl.env uses, with an operator's.
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    kept = {file: (out / file).read_bytes() for file in certs_of(name)}
    arguments = ["client", "--role", "operator", "--subject", name]

    code = certs.main(["--out", str(out), *arguments])

    assert code == 1
    assert capsys.readouterr().err == (
        f"certs: {out}/ has {', '.join(certs_of(name))} already: give another --name, or"
        " --force after `client` to replace them\n"
    )
    assert {file: (out / file).read_bytes() for file in kept} == kept


@pytest.mark.parametrize("force", [["client", "--force"], ["--force", "client"]])
def test_a_client_already_issued_is_replaced_with_force(tmp_path: Path, force: list[str]) -> None:
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    before = {file: (out / file).read_bytes() for file in certs_of("admin")}
    arguments = ["--role", "operator", "--subject", "admin"]

    assert certs.main(["--out", str(out), *force, *arguments]) == 0

    assert all((out / file).read_bytes() != data for file, data in before.items())
    pem = (out / "admin.pem").read_bytes()
    assert identity_from_certificate(pem).role == Role.OPERATOR


def test_a_token_left_alone_under_a_name_is_not_replaced_either(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    certs.make_dev_pki(out)
    (out / "admin.pem").unlink()
    (out / "admin.key").unlink()

    assert (
        certs.main(["--out", str(out), "client", "--role", "operator", "--subject", "admin"]) == 1
    )
    assert not (out / "admin.pem").exists()


def certs_of(name: str) -> list[str]:
    return [f"{name}.pem", f"{name}.key", f"tokens/{name}.jwt"]


@pytest.mark.parametrize(
    ("subject", "why"),
    [
        ("desk-1\u200b", "control, invisible or look-alike"),
        ("ops\nFORGED line", "control, invisible or look-alike"),
        ("desk\u202e1", "control, invisible or look-alike"),
    ],
)
def test_a_certificate_whose_subject_would_not_show_as_it_is_is_refused(
    pki: Path, subject: str, why: str
) -> None:
    # As a token's sub is: a look-alike of desk-1 wrote its calls into the audit trail beside
    # desk-1's, with a rate bucket, stream slots and request ids of its own (security helper).
    _, issued = certs.issue(certs.load_authority(pki), subject, "centre", (), [CENTER_URI + "C1"])
    with pytest.raises(Unauthenticated, match=f"the credential's subject .*{why}"):
        identity_from_certificate(issued.public_bytes(serialization.Encoding.PEM))


def test_a_client_whose_subject_would_not_show_as_it_is_is_not_issued(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--role", "centre", "--subject", "desk-1\u200b", "--center", "C1"]
    with pytest.raises(SystemExit) as refused:
        certs.main(["--out", str(pki), "client", *arguments, "--name", "lookalike"])
    assert refused.value.code == 2
    assert "look-alike character" in capsys.readouterr().err
    assert not (pki / "lookalike.pem").exists()


@pytest.mark.parametrize(
    ("attributes", "complaint"),
    [
        (["admin", "centre"], "more than one role"),
        (["operator", "admin"], "more than one role"),
    ],
)
def test_a_certificate_naming_two_roles_acts_as_neither(
    pki: Path, attributes: list[str], complaint: str
) -> None:
    # It was taken as its first OU: operator then admin acted as an operator, admin then
    # centre as an admin (security hunt).
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in attributes]
        + [x509.NameAttribute(NameOID.COMMON_NAME, "desk")]
    )
    with pytest.raises(Unauthenticated, match=complaint):
        identity_from_certificate(signed(pki, name))


def test_a_certificate_naming_two_subjects_acts_as_neither(pki: Path) -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "operator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "desk-1"),
            x509.NameAttribute(NameOID.COMMON_NAME, "desk-2"),
        ]
    )
    with pytest.raises(Unauthenticated, match="more than one subject"):
        identity_from_certificate(signed(pki, name))


def signed(pki: Path, name: x509.Name) -> bytes:
    """A certificate for this subject name, signed by the dev CA."""
    authority = certs.load_authority(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(authority.key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)
