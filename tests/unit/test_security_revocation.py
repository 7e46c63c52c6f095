"""Revoked client certificates (SANAD_AUTH_REVOKED_CERTS_FILE): refused as UNAUTHENTICATED over
real mutual TLS, whatever token comes with them, and the list read again when it changes."""

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from sanad.runtime import StartupError
from sanad.security.authenticate import Authenticator
from sanad.security.revocation import RevocationFileError, RevokedCertificates, parse_serials
from sanad.settings import ServerSettings
from tests.unit.security_echo import call, every_method, request_class, start_echo
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
