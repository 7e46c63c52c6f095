"""Mutual TLS: certificates from our CA get in with their identity; others never reach a handler."""

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from sanad.devstack import certs
from sanad.errors import Unauthenticated
from sanad.rpc.channel import service_channel
from sanad.security.credentials import identity_from_certificate
from sanad.security.tls import client_credentials, read_checked
from sanad.settings import ServerSettings
from tests.unit.security_echo import call, every_method, request_class, start_echo

TRANSITION = next(m for m in every_method() if m.name == "TransitionLicence")
LIST_AGENCIES = next(m for m in every_method() if m.name == "ListAgencies")
NAMES = ("CA file", "certificate file", "key file")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("foreign")
    certs.make_dev_pki(out)
    return out


def server_settings(pki: Path, **extra: object) -> ServerSettings:
    return ServerSettings(
        grpc_host="127.0.0.1",
        tls_cert_file=str(pki / "registry.pem"),
        tls_key_file=str(pki / "registry.key"),
        tls_ca_file=str(pki / "ca.pem"),
        **extra,
    )


@pytest.fixture(scope="module")
async def mtls_port(pki: Path) -> AsyncIterator[int]:
    running = await start_echo(server_settings(pki, tls_client_auth=True, auth_mode="required"))
    yield running.port
    await running.stop(0)


def client(port: int, ca: Path, name: str = "", base: Path | None = None) -> grpc.aio.Channel:
    files = ("", "") if not name else (str(base / f"{name}.pem"), str(base / f"{name}.key"))  # type: ignore[operator]
    credentials = client_credentials(str(ca), *files)
    return grpc.aio.secure_channel(f"localhost:{port}", credentials)


def transition() -> bytes:
    return bytes(request_class(TRANSITION)(center_id="c-1").SerializeToString())


async def test_an_admin_certificate_from_our_ca_may_change_a_licence(
    pki: Path, mtls_port: int
) -> None:
    async with client(mtls_port, pki / "ca.pem", "admin", pki) as channel:
        assert await call(channel, TRANSITION, transition()) == grpc.StatusCode.OK


async def test_an_operator_certificate_is_authenticated_but_not_allowed(
    pki: Path, mtls_port: int
) -> None:
    async with client(mtls_port, pki / "ca.pem", "operator", pki) as channel:
        code = await call(channel, TRANSITION, transition())
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_client_without_a_certificate_is_rejected(pki: Path, mtls_port: int) -> None:
    async with client(mtls_port, pki / "ca.pem") as channel:
        code = await call(channel, LIST_AGENCIES, b"")
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_rejected(
    pki: Path, foreign: Path, mtls_port: int
) -> None:
    async with client(mtls_port, pki / "ca.pem", "admin", foreign) as channel:
        code = await call(channel, LIST_AGENCIES, b"")
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_cannot_talk_to_a_tls_port(pki: Path, mtls_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_port}") as channel:
        code = await call(channel, LIST_AGENCIES, b"")
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_from_another_ca(
    pki: Path, foreign: Path, mtls_port: int
) -> None:
    async with client(mtls_port, foreign / "ca.pem", "admin", foreign) as channel:
        code = await call(channel, LIST_AGENCIES, b"")
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_service_channel_presents_the_service_certificate_over_an_ip_target(
    pki: Path, mtls_port: int
) -> None:
    intake = ServerSettings(
        tls_cert_file=str(pki / "intake.pem"),
        tls_key_file=str(pki / "intake.key"),
        tls_ca_file=str(pki / "ca.pem"),
    )
    async with service_channel(intake, f"127.0.0.1:{mtls_port}") as channel:
        assert await call(channel, LIST_AGENCIES, b"") == grpc.StatusCode.OK
        assert await call(channel, TRANSITION, transition()) == grpc.StatusCode.PERMISSION_DENIED


async def test_tls_without_client_auth_takes_bearer_tokens(pki: Path) -> None:
    settings = server_settings(
        pki, auth_mode="required", auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem")
    )
    running = await start_echo(settings)
    token = (pki / "tokens" / "ministry-mociip.jwt").read_text().strip()
    try:
        async with client(running.port, pki / "ca.pem") as channel:
            assert await call(channel, LIST_AGENCIES, b"") == grpc.StatusCode.UNAUTHENTICATED
            metadata = (("authorization", f"Bearer {token}"),)
            assert await call(channel, TRANSITION, transition(), metadata) == grpc.StatusCode.OK
    finally:
        await running.stop(0)


@pytest.mark.parametrize("backend", sorted(certs.BACKENDS))
def test_the_dev_pki_serves_the_brokers_and_databases_under_their_production_names(
    pki: Path, backend: str
) -> None:
    certificate = x509.load_pem_x509_certificate((pki / f"{backend}.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == set(certs.BACKENDS[backend])
    # A backend's certificate is no caller's identity: its role is none the services know.
    with pytest.raises(Unauthenticated, match="unknown role 'backend'"):
        identity_from_certificate((pki / f"{backend}.pem").read_bytes())


def test_every_certificate_the_dev_pki_issues_passes_the_file_checks(pki: Path) -> None:
    # The check that refuses a CA's own certificate as a client's or service's refuses none
    # of these (each is CA:FALSE).
    issued = sorted(p.stem for p in pki.glob("*.key") if p.stem not in {"ca", "jwt-signing"})
    assert {*certs.SERVICES, *certs.BACKENDS, *certs.EXAMPLES} <= set(issued)
    for name in issued:
        read_checked(str(pki / "ca.pem"), str(pki / f"{name}.pem"), str(pki / f"{name}.key"), NAMES)


async def test_a_bad_token_over_a_client_certificate_is_charged_to_the_certificates_identity(
    pki: Path,
) -> None:
    settings = server_settings(
        pki,
        tls_client_auth=True,
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        rate_limit_per_s=1 / 60,
        rate_limit_burst=2,
    )
    running = await start_echo(settings)
    bad = (("authorization", "Bearer x.y.z"),)
    try:
        async with client(running.port, pki / "ca.pem", "admin", pki) as channel:
            failing = [await call(channel, LIST_AGENCIES, b"", bad) for _ in range(2)]
            # The certificate's own calls now find its bucket spent: TLS verified who sent
            # the bad tokens.
            own = await call(channel, LIST_AGENCIES, b"")
        async with client(running.port, pki / "ca.pem", "operator", pki) as channel:
            other = await call(channel, TRANSITION, transition())
    finally:
        await running.stop(0)
    assert failing == [grpc.StatusCode.UNAUTHENTICATED] * 2
    assert own == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert other == grpc.StatusCode.PERMISSION_DENIED  # its own bucket: judged, not refused
