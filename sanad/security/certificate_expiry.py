"""When the certificates a process uses stop being valid, as a gauge for the expiry alerts.

gRPC's credentials and pymongo's client read their files once, as the process starts, so a
certificate renewed on disk reaches them only with a restart: a process that runs past its
certificate's end fails every handshake from then on, as a server and as a client. Their files
count as they were read then. aio-pika reads the AMQP URL's files again for every connection it
opens, so those count as they are on disk now, read at each scrape.

A certificate file counts by its first certificate (the leaf, before any chain). A CA file counts
by the latest end among its certificates: during a rotation the bundle holds the old CA and the
new one, and the old one's end is expected. That end matters only while peers still present
certificates the old CA signed, which the peers' own gauges (and the servers' certificates, which
are not ours to read) tell.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from pymongo.errors import InvalidURI
from yarl import URL

from sanad.settings import MONGO_TLS_FILES, CommonSettings, mongo_url_options
from sanad.telemetry.metrics import TLS_CERTIFICATE_EXPIRY

log = logging.getLogger("sanad.security")


@dataclass(frozen=True)
class CertificateFile:
    """A TLS file named by the settings: what it is for, whether it holds CAs, and whether its
    user reads it again for every connection."""

    label: str
    path: str
    is_ca: bool
    read_per_connection: bool = False

    def end(self) -> float:
        """The end of validity (Unix time) this file counts by; OSError or ValueError when it
        cannot be read or holds no certificate."""
        ends = not_valid_after(Path(self.path).read_bytes())
        return max(ends) if self.is_ca else ends[0]


def certificate_files(settings: CommonSettings) -> list[CertificateFile]:
    """The TLS files the process uses: gRPC's, MongoDB's (a SANAD_MONGO_TLS_* file, or the
    URL's option), and an amqps:// URL's, for a process that uses the broker."""
    mongo = _mongo_url_files(settings.mongo_url)
    files = [
        CertificateFile("grpc_certificate", settings.tls_cert_file, is_ca=False),
        CertificateFile("grpc_ca", settings.tls_ca_file, is_ca=True),
        CertificateFile(
            "mongodb_certificate",
            settings.mongo_tls_cert_key_file or mongo.get("tlscertificatekeyfile", ""),
            is_ca=False,
        ),
        CertificateFile(
            "mongodb_ca", settings.mongo_tls_ca_file or mongo.get("tlscafile", ""), is_ca=True
        ),
    ]
    amqp = URL(settings.amqp_url)
    if settings.uses_amqp and amqp.scheme == "amqps":
        files += [
            CertificateFile("amqp_certificate", amqp.query.get("certfile", ""), False, True),
            CertificateFile("amqp_ca", amqp.query.get("cafile", ""), True, True),
        ]
    return [file for file in files if file.path]


def export_expiry(settings: CommonSettings) -> None:
    """Set the expiry gauge of every TLS file the settings name: now for those read once, at
    each scrape for those read per connection. A file whose certificates cannot be read is
    logged and left out (NaN, for one read at each scrape): the connection that uses it
    reports its own error, and a metric must not stop a process."""
    for file in certificate_files(settings):
        if file.read_per_connection:
            TLS_CERTIFICATE_EXPIRY.labels(file.label).set_function(_reading(file))
            continue
        try:
            end = file.end()
        except (OSError, ValueError) as error:
            _unreadable(file, error)
            continue
        # Only now: a series created before would read 0, an end 56 years past.
        TLS_CERTIFICATE_EXPIRY.labels(file.label).set(end)


def not_valid_after(pem: bytes) -> list[float]:
    """The end of validity (Unix time) of each certificate in a PEM file, in file order;
    ValueError when it holds none (a key file alone, say)."""
    return [cert.not_valid_after_utc.timestamp() for cert in x509.load_pem_x509_certificates(pem)]


def _reading(file: CertificateFile) -> Callable[[], float]:
    """The file's end as on disk at each call; NaN, logged once until it reads again, when it
    cannot be read."""
    failing = False

    def end() -> float:
        nonlocal failing
        try:
            value = file.end()
        except (OSError, ValueError) as error:
            if not failing:
                _unreadable(file, error)
            failing = True
            return math.nan
        failing = False
        return value

    return end


def _unreadable(file: CertificateFile, error: Exception) -> None:
    log.warning(
        "cannot read the expiry of a certificate file",
        extra={"file": file.label, "path": file.path, "error": type(error).__name__},
    )


def _mongo_url_files(url: str) -> dict[str, str]:
    """The TLS file options of a MongoDB URL, by pymongo's lower-case names; none when pymongo
    would refuse its options (the settings' checks say so)."""
    try:
        options = mongo_url_options(url)
    except (InvalidURI, ValueError):
        return {}
    return {name: str(options[name]) for name in MONGO_TLS_FILES if name in options}
