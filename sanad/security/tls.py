"""gRPC TLS credentials from settings: the server's, and a client's towards other services.

A process's own files are checked as it starts: one it cannot read, a certificate and key that
are not a pair, a CA's own certificate given as the process's, a CA file with no certificate
stop it with one line naming the setting (gRPC itself would only fail to bind its port or every
handshake, or abort the process when it meets a certificate without its key). sanadctl's files
are checked the same way, naming its options (gRPC would print its own log lines and fail every
handshake, or trust the system roots for an empty CA)."""

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

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
    ca_file: str,
    cert_file: str = "",
    key_file: str = "",
    names: tuple[str, str, str] = ("CA file", "certificate file", "key file"),
) -> grpc.ChannelCredentials:
    """Credentials from file names, read and checked (TlsFileError names the file's `names`
    entry: a CA file with no certificate, a certificate and key that are no pair or a CA's);
    no CA file trusts the system roots."""
    files = read_checked(ca_file, cert_file, key_file, names)
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
    )


class TlsFileError(ValueError):
    """A TLS file that cannot be read, or files that do not go together: one line naming it."""


def _own_files(settings: CommonSettings) -> _Files:
    """The process's TLS files, read and checked (see the module's docstring)."""
    try:
        return read_checked(
            settings.tls_ca_file,
            settings.tls_cert_file,
            settings.tls_key_file,
            ("SANAD_TLS_CA_FILE", "SANAD_TLS_CERT_FILE", "SANAD_TLS_KEY_FILE"),
        )
    except TlsFileError as error:
        raise StartupError(str(error)) from None


def read_checked(ca: str, cert: str, key: str, names: tuple[str, str, str]) -> _Files:
    """The contents of the files named (None for an empty name); TlsFileError, naming the
    file's entry of `names`, for one that cannot be read, a CA file holding no PEM certificate
    (an empty one would leave gRPC trusting the system roots), or a certificate and key that are
    not a pair or are a CA's own (gRPC would only fail its handshakes, or abort the process)."""
    ca_name, cert_name, key_name = names
    files = _Files(ca=_read(ca, ca_name), cert=_read(cert, cert_name), key=_read(key, key_name))
    if ca:
        try:
            ssl.create_default_context(cafile=ca)
        except ssl.SSLError as error:
            raise TlsFileError(f"{ca_name}: no PEM certificate in {ca}{_why(error)}") from None
    if cert and key:
        try:
            pairing = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # The pair is checked, not its strength: gRPC applies its own policy to that.
            pairing.set_ciphers("DEFAULT:@SECLEVEL=0")
            pairing.load_cert_chain(cert, key, password=lambda: b"")
        except ssl.SSLError as error:
            raise TlsFileError(
                f"{cert_name} and {key_name}: not a PEM certificate and the unencrypted private"
                f" key that goes with it{_why(error)}"
            ) from None
        if files.cert is not None and _authority(files.cert):
            # A CA's certificate names no client or service, and gRPC refuses a typical one (its
            # key usage allows only signing certificates: "Invalid cert chain file"): sanadctl
            # failed every call UNAVAILABLE, and a service could not bind its port.
            raise TlsFileError(
                f"{cert_name}: {cert} is a CA certificate (basicConstraints CA:TRUE), not one a"
                " client or service presents: give the certificate the CA issued to it, with its"
                f" key; the CA's own goes in {ca_name}"
            )
    return files


def _authority(pem: bytes) -> bool:
    """Whether the file's first certificate, the one presented, is a CA's."""
    try:
        first = x509.load_pem_x509_certificates(pem)[0]
        return bool(first.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (ValueError, x509.ExtensionNotFound):  # no such extension, or left to gRPC to judge
        return False


BYTE_ORDER_MARK = b"\xef\xbb\xbf"


def _read(path: str, name: str) -> bytes | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TlsFileError(f"{name}: cannot read {path}: {error.strerror}") from None
    if data.startswith(BYTE_ORDER_MARK):
        # Python's OpenSSL reads past it; gRPC's does not, and fails every handshake.
        raise TlsFileError(
            f"{name}: {path} begins with a byte order mark, which gRPC cannot read: save it"
            " without one"
        )
    return data


def _why(error: ssl.SSLError) -> str:
    """OpenSSL's short reason, when it gives one (KEY_VALUES_MISMATCH, say)."""
    return f" ({error.reason})" if error.reason else ""
