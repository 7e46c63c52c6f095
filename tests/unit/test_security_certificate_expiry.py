"""The expiry of the certificates a process uses, exported for the expiry alerts
(sanad.security.certificate_expiry): gRPC's and MongoDB's files as read at start, the AMQP URL's
as on disk at each scrape (aio-pika reads them for every connection), the leaf of a certificate
file and the latest end of a CA bundle, served on the process's /metrics."""

import datetime
import logging
import math
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from sanad import runtime
from sanad.devstack.mongo_server import free_port
from sanad.security.certificate_expiry import certificate_files, export_expiry
from sanad.settings import ServerSettings
from sanad.telemetry.metrics import TLS_CERTIFICATE_EXPIRY
from services.registry.settings import RegistrySettings

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def certificate(name: str, days: int) -> bytes:
    """A self-signed certificate ending `days` from now, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


def ends_in(days: int) -> float:
    return (NOW + datetime.timedelta(days=days)).timestamp()


def exported(file: str) -> float | None:
    return REGISTRY.get_sample_value(TLS_CERTIFICATE_EXPIRY._name, {"file": file})


@pytest.fixture(autouse=True)
def no_gauges_yet() -> None:
    """Each test sees only what it exported: the gauge is the process's."""
    TLS_CERTIFICATE_EXPIRY.clear()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A leaf before a longer-lived chain certificate, a CA bundle whose old CA ends first, and
    one file for each of MongoDB's and the broker's certificates and CAs."""
    contents = {
        "grpc.pem": certificate("intake", 30) + certificate("intermediate", 900),
        "ca.pem": certificate("old CA", 20) + certificate("new CA", 3000),
        "mongo-client.pem": certificate("mongo client", 40),
        "mongo-ca.pem": certificate("mongo CA", 50),
        "amqp-client.pem": certificate("amqp client", 60),
        "amqp-ca.pem": certificate("amqp CA", 70),
    }
    for name, pem in contents.items():
        (tmp_path / name).write_bytes(pem)
    return {name: tmp_path / name for name in contents}


def settings_naming(
    files: dict[str, Path], kind: type[ServerSettings] = ServerSettings
) -> ServerSettings:
    return kind(
        tls_cert_file=str(files["grpc.pem"]),
        tls_key_file=str(files["grpc.pem"]),  # only named: the exporter reads certificates
        tls_ca_file=str(files["ca.pem"]),
        mongo_url=(
            "mongodb://db:27017/?tlsCAFile={}&tlsCertificateKeyFile={}".format(
                files["mongo-ca.pem"], files["mongo-client.pem"]
            )
        ),
        amqp_url=(
            "amqps://u:p@broker:5671/?cafile={}&certfile={}&keyfile=k.pem".format(
                files["amqp-ca.pem"], files["amqp-client.pem"]
            )
        ),
    )


def test_every_file_counts_its_leaf_or_its_latest_ca(files: dict[str, Path]) -> None:
    export_expiry(settings_naming(files))
    assert exported("grpc_certificate") == ends_in(30)  # the leaf, not its chain
    assert exported("grpc_ca") == ends_in(3000)  # the new CA carries on past the old one
    assert exported("mongodb_certificate") == ends_in(40)
    assert exported("mongodb_ca") == ends_in(50)
    assert exported("amqp_certificate") == ends_in(60)
    assert exported("amqp_ca") == ends_in(70)


def test_the_mongodb_settings_win_over_the_urls_files(files: dict[str, Path]) -> None:
    settings = settings_naming(files).model_copy(
        update={"mongo_tls_ca_file": str(files["amqp-ca.pem"]),
                "mongo_tls_cert_key_file": str(files["amqp-client.pem"])}
    )  # fmt: skip
    by_label = {f.label: f.path for f in certificate_files(settings)}
    assert by_label["mongodb_ca"] == str(files["amqp-ca.pem"])
    assert by_label["mongodb_certificate"] == str(files["amqp-client.pem"])


def test_a_process_without_the_broker_leaves_its_urls_files_out(files: dict[str, Path]) -> None:
    labels = {f.label for f in certificate_files(settings_naming(files, RegistrySettings))}
    assert labels == {"grpc_certificate", "grpc_ca", "mongodb_certificate", "mongodb_ca"}


def test_a_plaintext_process_names_no_file() -> None:
    assert certificate_files(ServerSettings()) == []


def test_a_file_without_a_certificate_is_logged_and_left_out(
    files: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Its connection reports its own error; a metric must not stop the process.
    (tmp_path / "key-only.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    settings = settings_naming(files).model_copy(
        update={"tls_ca_file": str(tmp_path / "key-only.pem"),
                "mongo_tls_ca_file": str(tmp_path / "missing.pem")}
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="sanad.security"):
        export_expiry(settings)
    assert exported("grpc_ca") is None
    assert exported("mongodb_ca") is None
    assert exported("grpc_certificate") == ends_in(30)
    refused = {(r.file, r.error) for r in caplog.records}  # type: ignore[attr-defined]
    assert refused == {("grpc_ca", "ValueError"), ("mongodb_ca", "FileNotFoundError")}


def test_the_amqp_files_count_as_on_disk_now(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    # aio-pika reads them again for every connection: a renewed file is what the next one uses.
    export_expiry(settings_naming(files))
    assert exported("amqp_ca") == ends_in(70)
    files["amqp-ca.pem"].write_bytes(certificate("renewed amqp CA", 400))
    files["grpc.pem"].write_bytes(certificate("renewed intake", 400))
    assert exported("amqp_ca") == ends_in(400)
    assert exported("grpc_certificate") == ends_in(30)  # gRPC serves what it read at start
    files["amqp-ca.pem"].unlink()
    with caplog.at_level(logging.WARNING, logger="sanad.security"):
        assert math.isnan(exported("amqp_ca") or 0.0)
        assert math.isnan(exported("amqp_ca") or 0.0)
    assert len(caplog.records) == 1  # logged once until it reads again


def test_a_plaintext_amqp_url_names_no_broker_file(files: dict[str, Path]) -> None:
    settings = settings_naming(files).model_copy(
        update={"amqp_url": f"amqp://u:p@broker:5672/?cafile={files['amqp-ca.pem']}"}
    )
    labels = {f.label for f in certificate_files(settings)}
    assert not labels & {"amqp_certificate", "amqp_ca"}


def test_a_process_serves_them_on_its_metrics_port(files: dict[str, Path]) -> None:
    port = free_port()
    runtime.serve_metrics_of(settings_naming(files), port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    line = 'sanad_tls_certificate_expiry_timestamp_seconds{file="grpc_certificate"}'
    [value] = [row.split()[-1] for row in text.splitlines() if row.startswith(line)]
    assert float(value) == ends_in(30)
