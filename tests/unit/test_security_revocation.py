"""Revoked credentials: client certificates (SANAD_AUTH_REVOKED_CERTS_FILE) refused as
UNAUTHENTICATED over real mutual TLS whatever token comes with them, bearer tokens by subject and
issue time (SANAD_AUTH_REVOKED_TOKENS_FILE), and both lists read again when they change."""

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import jwt
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sanad.errors import Unauthenticated
from sanad.runtime import StartupError
from sanad.security.authenticate import Authenticator
from sanad.security.credentials import TokenVerifier, issue_token
from sanad.security.interceptor import _Standing
from sanad.security.jwks import parse_keys
from sanad.security.revocation import (
    RevocationFileError,
    RevokedCertificates,
    RevokedTokens,
    parse_serials,
    parse_subjects,
)
from sanad.settings import AuthMode, ServerSettings
from tests.unit.security_echo import call, every_method, request_class, start_echo
from tests.unit.signing_keys import ROP, SigningKey, jwks
from tests.unit.test_security_signing_keys import Clock, metric, replace
from tests.unit.test_security_tls import client

TRANSITION = next(m for m in every_method() if m.name == "TransitionLicence")
LIST_AGENCIES = next(m for m in every_method() if m.name == "ListAgencies")
# How often the servers here look at their revocation file: short, so a change shows at once.
RELOAD_S = 0.05


def serial(pki: Path, name: str) -> int:
    return x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes()).serial_number


def transition() -> bytes:
    return bytes(request_class(TRANSITION)(center_id="c-1").SerializeToString())


# The file


def test_serials_are_read_as_openssl_prints_them_with_comments_and_blank_lines() -> None:
    data = b"""# revoked after the Sohar centre's laptop was stolen
serial=1A2B3C
0x1a2b3d   # a ticket number here

4F:00:0A
"""
    assert parse_serials(data) == {0x1A2B3C, 0x1A2B3D, 0x4F000A}


def test_an_empty_file_revokes_nothing() -> None:
    assert parse_serials(b"") == frozenset()
    assert parse_serials(b"# nothing revoked yet\n") == frozenset()


@pytest.mark.parametrize(
    ("data", "line"),
    [(b"1A2B\nnot-a-serial\n", 2), (b"serial=\n", 1), (b"12 34\n", 1), (b"-5\n", 1)],
)
def test_a_line_that_is_not_a_serial_number_is_named(data: bytes, line: int) -> None:
    with pytest.raises(RevocationFileError, match=f"line {line} is not a serial number"):
        parse_serials(data)


def test_a_file_that_is_not_text_is_refused() -> None:
    with pytest.raises(RevocationFileError, match="not UTF-8"):
        parse_serials(b"\xff\xfe1A2B")


def test_a_revocation_file_that_cannot_be_used_stops_the_process_naming_the_setting(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "revoked.txt"
    broken.write_bytes(b"1A2B\nzz\n")
    for path, reason in [(broken, "line 2"), (tmp_path / "missing.txt", "cannot read")]:
        settings = ServerSettings(auth_revoked_certs_file=str(path))
        with pytest.raises(StartupError, match=f"SANAD_AUTH_REVOKED_CERTS_FILE: .*{reason}"):
            Authenticator.from_settings(settings)


def test_a_broken_change_keeps_the_previous_list_logs_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    path = tmp_path / "revoked.txt"
    path.write_bytes(b"1A\n2B\n")
    revoked = RevokedCertificates(str(path), 1.0, clock)
    assert metric("sanad_auth_revoked_certs") == 2
    failed = metric("sanad_auth_revoked_certs_reloads_total", {"outcome": "failed"})
    replace(path, b"1A\n2B\nthree\n")
    clock.now += 1.0
    with caplog.at_level(logging.ERROR, "sanad.security"):
        assert revoked.current() == {0x1A, 0x2B}
    assert "the previous 2 revoked serial(s) stay in use: line 3" in caplog.text
    assert metric("sanad_auth_revoked_certs_file_failing") == 1
    assert metric("sanad_auth_revoked_certs_reloads_total", {"outcome": "failed"}) == failed + 1
    replace(path, b"1A\n2B\n3C\n")
    clock.now += 1.0
    assert revoked.current() == {0x1A, 0x2B, 0x3C}
    assert metric("sanad_auth_revoked_certs_file_failing") == 0
    assert metric("sanad_auth_revoked_certs") == 3


# Over mutual TLS


def settings(pki: Path, revoked: Path, **extra: object) -> ServerSettings:
    return ServerSettings(
        grpc_host="127.0.0.1",
        tls_cert_file=str(pki / "registry.pem"),
        tls_key_file=str(pki / "registry.key"),
        tls_ca_file=str(pki / "ca.pem"),
        tls_client_auth=True,
        auth_mode="required",
        auth_revoked_certs_file=str(revoked),
        auth_jwt_keys_reload_s=RELOAD_S,
        **extra,
    )


@pytest.fixture
def revoked(tmp_path: Path) -> Path:
    path = tmp_path / "revoked.txt"
    path.write_bytes(b"# none yet\n")
    return path


@pytest.fixture
async def port(pki: Path, revoked: Path) -> AsyncIterator[int]:
    running = await start_echo(settings(pki, revoked))
    yield running.port
    await running.stop(0)


async def code_within(
    channel: grpc.aio.Channel, expected: grpc.StatusCode, within_s: float = 5.0
) -> grpc.StatusCode:
    """The call's code once it is `expected`, or the last one after within_s: a changed file
    is looked at on the next call RELOAD_S after the last look."""
    code = await call(channel, TRANSITION, transition())
    for _ in range(int(within_s / RELOAD_S)):
        if code == expected:
            break
        await asyncio.sleep(RELOAD_S)
        code = await call(channel, TRANSITION, transition())
    return code


async def test_a_certificate_revoked_while_in_use_is_refused_and_taken_back_when_unrevoked(
    pki: Path, revoked: Path, port: int
) -> None:
    admin, operator = serial(pki, "admin"), serial(pki, "operator")
    assert admin != operator
    async with client(port, pki / "ca.pem", "admin", pki) as channel:
        assert await call(channel, TRANSITION, transition()) == grpc.StatusCode.OK
        replace(revoked, f"serial={admin:X}\n".encode())
        code = await code_within(channel, grpc.StatusCode.UNAUTHENTICATED)
        assert code == grpc.StatusCode.UNAUTHENTICATED, "the open connection is refused too"
        assert await call(channel, LIST_AGENCIES, b"") == grpc.StatusCode.UNAUTHENTICATED
    async with client(port, pki / "ca.pem", "operator", pki) as channel:
        # Another certificate of the same CA is judged as before: authenticated, not allowed.
        assert await call(channel, TRANSITION, transition()) == grpc.StatusCode.PERMISSION_DENIED
    async with client(port, pki / "ca.pem", "admin", pki) as channel:
        replace(revoked, b"# the laptop was found\n")
        assert await code_within(channel, grpc.StatusCode.OK) == grpc.StatusCode.OK


async def test_a_revoked_certificate_is_refused_whatever_token_comes_with_it(
    pki: Path, revoked: Path
) -> None:
    replace(revoked, f"{serial(pki, 'operator'):x}\n".encode())
    running = await start_echo(
        settings(pki, revoked, auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"))
    )
    token = (pki / "tokens" / "ministry-mociip.jwt").read_text().strip()
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        async with client(running.port, pki / "ca.pem", "admin", pki) as channel:
            assert await call(channel, TRANSITION, transition(), metadata) == grpc.StatusCode.OK
        async with client(running.port, pki / "ca.pem", "operator", pki) as channel:
            code = await call(channel, TRANSITION, transition(), metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop(0)


async def test_health_and_reflection_refuse_a_revoked_certificate_and_serve_others(
    pki: Path, revoked: Path, port: int
) -> None:
    # They need no identity, but were served to a revoked certificate: health answered, the
    # API listed, Health/Watch streams held open without a cap (security helper).
    replace(revoked, f"{serial(pki, 'operator'):x}\n".encode())
    await asyncio.sleep(2 * RELOAD_S)  # the file is looked at again RELOAD_S after the last look
    refused = grpc.StatusCode.UNAUTHENTICATED
    async with client(port, pki / "ca.pem", "operator", pki) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as checked:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert (checked.value.code(), checked.value.details()) == (
            refused,
            "the client certificate has been revoked",
        )
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            async for _ in health.Watch(health_pb2.HealthCheckRequest(), timeout=5):
                pass
        assert watched.value.code() == refused
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as listed:
            async for _ in reflection.ServerReflectionInfo(iter([listing]), timeout=5):
                pass
        assert listed.value.code() == refused
    async with client(port, pki / "ca.pem", "admin", pki) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert answer.status in (answer.SERVING, answer.NOT_SERVING)
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([listing]), timeout=5
        )
        services = [s.name async for r in stream for s in r.list_services_response.service]
        assert "grpc.health.v1.Health" in services


# Tokens


def test_subjects_are_read_with_or_without_a_time_and_a_hash_inside_a_subject_stays() -> None:
    data = b"""# subject                  refused if issued before
ministry rop systems before=2026-12-05T10:00:00Z  # the token leaked in ticket 4411
ops#1
decommissioned-system
decommissioned-system before=2026-01-01T00:00:00+04:00
"""
    assert dict(parse_subjects(data)) == {
        "ministry rop systems": 1796464800.0,
        "ops#1": math.inf,
        "decommissioned-system": math.inf,  # the stricter of its two lines
    }


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        (b"rop before=2026-12-05T10:00:00\n", "line 1: before= takes an ISO 8601 time"),
        (b"ok\nrop before=yesterday\n", "line 2: before= takes an ISO 8601 time"),
        (b"before=2026-12-05T10:00:00Z\n", "line 1 names no subject"),
    ],
)
def test_a_line_without_a_subject_or_with_a_time_of_no_zone_is_named(
    data: bytes, refusal: str
) -> None:
    with pytest.raises(RevocationFileError, match=refusal):
        parse_subjects(data)


def token(key: SigningKey, issued_at: int | None) -> str:
    """A token of ROP's subject issued at issued_at, or without an iat."""
    if issued_at is None:
        claims = {"sub": ROP.subject, "role": "ministry", "agency": "ROP"}
        return jwt.encode(
            {**claims, "iss": "sanad-mesh", "aud": "sanad-mesh", "exp": int(time.time()) + 600},
            key.pem,
            algorithm="ES256",
            headers={"kid": key.kid},
        )
    return issue_token(key.pem, ROP, "sanad-mesh", "sanad-mesh", 600, kid=key.kid)


def test_tokens_of_a_revoked_subject_issued_before_its_time_are_refused(tmp_path: Path) -> None:
    clock = Clock()
    key = SigningKey()
    path = tmp_path / "revoked-tokens.txt"
    path.write_bytes(b"")
    revoked = RevokedTokens(str(path), 1.0, clock)
    check = TokenVerifier(parse_keys(jwks(key.jwk)), "sanad-mesh", "sanad-mesh", 3600, revoked)
    before = token(key, int(time.time()))
    assert check.verify(before) == ROP
    assert metric("sanad_auth_revoked_tokens") == 0

    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    replace(path, f"someone-else\n{ROP.subject} before={cutoff}\n".encode())
    clock.now += 1.0
    with pytest.raises(Unauthenticated, match="the bearer token has been revoked"):
        check.verify(before)
    with pytest.raises(Unauthenticated, match="revoked"):
        check.verify(token(key, None))  # no iat: nothing says it was issued after the time
    assert metric("sanad_auth_revoked_tokens") == 2

    replace(path, f"{ROP.subject} before=2000-01-01T00:00:00Z\n".encode())
    clock.now += 1.0
    assert check.verify(before) == ROP, "issued after the time: a new token works"
    replace(path, f"{ROP.subject}\n".encode())
    clock.now += 1.0
    with pytest.raises(Unauthenticated, match="revoked"):
        check.verify(token(key, int(time.time()) + 1))  # every token of the subject


def test_a_revoked_tokens_file_that_cannot_be_used_stops_the_process_naming_the_setting(
    pki: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "revoked-tokens.txt"
    broken.write_bytes(b"rop before=soon\n")
    keys = str(pki / "jwt-signing.pub.pem")
    for path, extra, refusal in [
        (broken, {"auth_jwt_public_key_file": keys}, "line 1"),
        (tmp_path / "missing.txt", {"auth_jwt_public_key_file": keys}, "cannot read"),
        (tmp_path / "missing.txt", {}, "no bearer token is accepted"),
    ]:
        settings = ServerSettings(auth_revoked_tokens_file=str(path), **extra)
        with pytest.raises(StartupError, match=f"SANAD_AUTH_REVOKED_TOKENS_FILE: .*{refusal}"):
            Authenticator.from_settings(settings)


async def test_a_service_refuses_a_revoked_subjects_token_on_a_connection_already_open(
    pki: Path, tmp_path: Path
) -> None:
    revoked_tokens = tmp_path / "revoked-tokens.txt"
    revoked_tokens.write_bytes(b"")
    running = await start_echo(
        ServerSettings(
            grpc_host="127.0.0.1",
            tls_cert_file=str(pki / "registry.pem"),
            tls_key_file=str(pki / "registry.key"),
            tls_ca_file=str(pki / "ca.pem"),
            auth_mode="required",
            auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
            auth_revoked_tokens_file=str(revoked_tokens),
            auth_jwt_keys_reload_s=RELOAD_S,
        )
    )
    leaked = (pki / "tokens" / "ministry-mociip.jwt").read_text().strip()
    subject = jwt_subject(leaked)
    try:
        async with client(running.port, pki / "ca.pem") as channel:
            metadata = (("authorization", f"Bearer {leaked}"),)
            assert await call(channel, TRANSITION, transition(), metadata) == grpc.StatusCode.OK
            cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
            replace(revoked_tokens, f"{subject} before={cutoff}\n".encode())
            code = grpc.StatusCode.OK
            for _ in range(int(5 / RELOAD_S)):
                code = await call(channel, TRANSITION, transition(), metadata)
                if code != grpc.StatusCode.OK:
                    break
                await asyncio.sleep(RELOAD_S)
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop(0)


def jwt_subject(token_text: str) -> str:
    return str(jwt.decode(token_text, options={"verify_signature": False})["sub"])


class CertifiedCaller:
    """The gRPC context of a call that came with this client certificate and no token."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self.pem]}


def test_an_open_stream_ends_at_its_next_check_once_its_certificate_is_revoked(
    pki: Path, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "revoked.txt"
    path.write_bytes(b"")
    authenticator = Authenticator(
        AuthMode.REQUIRED, None, RevokedCertificates(str(path), 1.0, clock)
    )
    caller = CertifiedCaller((pki / "admin.pem").read_bytes())
    identity = authenticator.identify(caller)
    owner = SimpleNamespace(admission=SimpleNamespace(authenticator=authenticator), recheck_s=0)
    stream = _Standing(owner, caller, identity)  # type: ignore[arg-type]
    stream.check()
    replace(path, f"{serial(pki, 'admin'):x}\n".encode())
    clock.now += 1.0
    with pytest.raises(Unauthenticated, match="no longer holds: the client certificate has been"):
        stream.check()
