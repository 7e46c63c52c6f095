"""gRPC TLS credentials from settings: the server's, and a client's towards other services."""

from pathlib import Path

import grpc

from sanad.settings import CommonSettings


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(settings: CommonSettings) -> grpc.ServerCredentials:
    """TLS with this process's certificate; client certificates required when mTLS is on."""
    root = _read(settings.tls_ca_file) if settings.tls_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=root,
        require_client_auth=settings.tls_client_auth,
    )


def channel_credentials(settings: CommonSettings) -> grpc.ChannelCredentials:
    """Verify servers against the CA and present this process's certificate as a client."""
    return client_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)


def client_credentials(
    ca_file: str, cert_file: str = "", key_file: str = ""
) -> grpc.ChannelCredentials:
    """Credentials from file names; an empty CA trusts the system roots."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file) if ca_file else None,
        private_key=_read(key_file) if key_file else None,
        certificate_chain=_read(cert_file) if cert_file else None,
    )
