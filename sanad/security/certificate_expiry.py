"""When the certificates a process started with stop being valid, as a gauge for the alerts.

A process reads its TLS files once, as it starts (gRPC's credentials, pymongo's and aio-pika's
connections), so a certificate renewed on disk reaches it only with a restart: one that runs past
its certificate's end fails every handshake from then on, as a server and as a client. Each file
the settings name counts: its own certificate by the first certificate in the file (the leaf,
before any chain), a CA file by the latest end among its certificates (during a rotation the
old CA may end first while the new one carries on).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from pymongo.errors import InvalidURI
from pymongo.uri_parser import split_options
from yarl import URL

from sanad.settings import CommonSettings
from sanad.telemetry.metrics import TLS_CERTIFICATE_EXPIRY

log = logging.getLogger("sanad.security")


@dataclass(frozen=True)
class CertificateFile:
    """A TLS file named by the settings: what it is for, and whether it holds CAs."""

    label: str
    path: str
    is_ca: bool


def certificate_files(settings: CommonSettings) -> list[CertificateFile]:
    """The TLS files the process uses: gRPC's, MongoDB's (a SANAD_MONGO_TLS_* file, or the
    URL's option), and the AMQP URL's, for a process that uses the broker."""
    mongo = _mongo_url_files(settings.mongo_url)
    named = [
        ("grpc_certificate", settings.tls_cert_file, False),
        ("grpc_ca", settings.tls_ca_file, True),
        (
            "mongodb_certificate",
            settings.mongo_tls_cert_key_file or mongo.get("tlscertificatekeyfile", ""),
            False,
        ),
        ("mongodb_ca", settings.mongo_tls_ca_file or mongo.get("tlscafile", ""), True),
    ]
    if settings.uses_amqp:
        query = URL(settings.amqp_url).query
        named += [
            ("amqp_certificate", query.get("certfile", ""), False),
            ("amqp_ca", query.get("cafile", ""), True),
        ]
    return [CertificateFile(label, path, is_ca) for label, path, is_ca in named if path]


def export_expiry(settings: CommonSettings) -> None:
    """Set the expiry gauge of every TLS file the settings name. A file whose certificates
    cannot be read is logged and left out: the connection that uses it reports its own error,
    and a metric must not stop a process."""
    for file in certificate_files(settings):
        try:
            ends = not_valid_after(Path(file.path).read_bytes())
        except (OSError, ValueError) as error:
            log.warning(
                "cannot read the expiry of a certificate file",
                extra={"file": file.label, "path": file.path, "error": type(error).__name__},
            )
            continue
        TLS_CERTIFICATE_EXPIRY.labels(file.label).set(max(ends) if file.is_ca else ends[0])


def not_valid_after(pem: bytes) -> list[float]:
    """The end of validity (Unix time) of each certificate in a PEM file, in file order;
    ValueError when it holds none (a key file alone, say)."""
    return [cert.not_valid_after_utc.timestamp() for cert in x509.load_pem_x509_certificates(pem)]


def _mongo_url_files(url: str) -> dict[str, str]:
    """The TLS file options of a MongoDB URL, by pymongo's lower-case names; none when pymongo
    would refuse its options (the settings' checks say so)."""
    _, _, query = url.partition("?")
    try:
        options = split_options(query, validate=False) if query else {}
    except (InvalidURI, ValueError):
        return {}
    return {
        name: str(options[name])
        for name in ("tlscafile", "tlscertificatekeyfile")
        if name in options
    }
