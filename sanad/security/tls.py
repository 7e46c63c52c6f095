"""gRPC TLS credentials from settings: the server's, and a client's towards other services.

A process's own files are checked as it starts: one it cannot read, a certificate and key that
are not a pair, a CA file with no certificate stop it with one line naming the setting (gRPC
itself would only fail to bind its port, or abort the process when it meets a certificate
without its key)."""

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from sanad.runtime import StartupError
from sanad.settings import CommonSettings


@dataclass(frozen=True)
class _Files:
    """The contents of a process's TLS files; None for those its settings leave empty."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None


def server_credentials(settings: CommonSettings) -> grpc.ServerCredentials:
    """TLS with this process's certificate; client certificates required when mTLS is on."""
    files = _own_files(settings)
    assert files.cert is not None  # TLS is on: settings pair the certificate and key
    assert files.key is not None
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)],
        root_certificates=files.ca,
        require_client_auth=settings.tls_client_auth,
    )


def channel_credentials(settings: CommonSettings) -> grpc.ChannelCredentials:
    """Verify servers against the CA and present this process's certificate as a client."""
    files = _own_files(settings)
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
    )


def client_credentials(
    ca_file: str, cert_file: str = "", key_file: str = ""
) -> grpc.ChannelCredentials:
    """Credentials from file names; an empty CA trusts the system roots."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes() if ca_file else None,
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )


def _own_files(settings: CommonSettings) -> _Files:
    """The process's TLS files, read and checked (see the module's docstring)."""
    files = _Files(
        ca=_read(settings.tls_ca_file, "SANAD_TLS_CA_FILE"),
        cert=_read(settings.tls_cert_file, "SANAD_TLS_CERT_FILE"),
        key=_read(settings.tls_key_file, "SANAD_TLS_KEY_FILE"),
    )
    if settings.tls_ca_file:
        try:
            ssl.create_default_context(cafile=settings.tls_ca_file)
        except ssl.SSLError as error:
            raise StartupError(
                f"SANAD_TLS_CA_FILE: no PEM certificate in {settings.tls_ca_file}{_why(error)}"
            ) from None
    if settings.tls_cert_file and settings.tls_key_file:
        try:
            pairing = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # The pair is checked, not its strength: gRPC applies its own policy to that.
            pairing.set_ciphers("DEFAULT:@SECLEVEL=0")
            pairing.load_cert_chain(
                settings.tls_cert_file, settings.tls_key_file, password=lambda: b""
            )
        except ssl.SSLError as error:
            raise StartupError(
                "SANAD_TLS_CERT_FILE and SANAD_TLS_KEY_FILE: not a PEM certificate and the "
                f"unencrypted private key that goes with it{_why(error)}"
            ) from None
    return files


def _read(path: str, variable: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise StartupError(f"{variable}: cannot read {path}: {error.strerror}") from None


def _why(error: ssl.SSLError) -> str:
    """OpenSSL's short reason, when it gives one (KEY_VALUES_MISMATCH, say)."""
    return f" ({error.reason})" if error.reason else ""
