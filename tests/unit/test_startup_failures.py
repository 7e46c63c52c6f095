"""A process that cannot start for its files or its ports says why in one line naming the
setting, and exits 2: never a traceback (a file it cannot read, a certificate and key that are
no pair, a key file without a key, a port another program holds)."""

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sanad.devstack.mongo_server import free_port
from sanad.runtime import port_problem
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from tests.unit.test_refused_settings import run_with
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

# Every port setting of every deployable, each given a free port unless a test names it: the
# defaults are taken whenever `make run` is going beside the tests.
PORT_SETTINGS = sorted(
    f"SANAD_{name.upper()}"
    for settings in (
        RegistrySettings,
        IntakeSettings,
        MetricsSettings,
        IngestSettings,
        BatchSettings,
    )
    for name in settings.model_fields
    if name.endswith("_port")
)


def start(module: str, **settings: str) -> subprocess.CompletedProcess[str]:
    # Nothing answers there: a process that did start waits, and the timeout says so.
    return run_with(
        module,
        SANAD_LOG_PLAIN="1",
        **(
            {"SANAD_MONGO_URL": "mongodb://127.0.0.1:1/?timeoutMS=500"}
            | {name: str(free_port()) for name in PORT_SETTINGS}
            | settings
        ),
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.create_server(("0.0.0.0", 0)) as holder:
        yield holder.getsockname()[1]


def the_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[-1]


def test_a_grpc_port_another_program_holds_is_named_by_its_setting(held_port: int) -> None:
    result = start("services.registry", SANAD_REGISTRY_PORT=str(held_port))
    assert the_line(result) == (
        f"ERROR   sanad.runtime: cannot start: cannot serve gRPC on 0.0.0.0:{held_port}: "
        "Address already in use (set SANAD_REGISTRY_PORT to move it)"
    )


@pytest.mark.parametrize(
    ("module", "variable"),
    [
        ("services.metrics", "SANAD_METRICS_METRICS_PORT"),
        ("workers.ingest", "SANAD_INGEST_METRICS_PORT"),
        ("workers.batch", "SANAD_BATCH_HEALTH_PORT"),
    ],
)
def test_a_metrics_or_health_port_another_program_holds_is_named(
    held_port: int, module: str, variable: str
) -> None:
    what = "gRPC" if variable.endswith("HEALTH_PORT") else "metrics"
    result = start(module, **{variable: str(held_port)})
    assert the_line(result).endswith(
        f"cannot serve {what} on 0.0.0.0:{held_port}: Address already in use "
        f"(set {variable} to move it)"
    )


def test_a_port_two_settings_share_names_both() -> None:
    with socket.create_server(("0.0.0.0", 0)) as holder:
        port = holder.getsockname()[1]
        settings = RegistrySettings(registry_port=port, registry_metrics_port=port)
        problem = port_problem(settings, port, "metrics")
    assert str(problem).endswith(
        "(set SANAD_REGISTRY_PORT or SANAD_REGISTRY_METRICS_PORT to move it)"
    )


def test_tls_files_that_cannot_be_read_are_named(tmp_path: Path, pki: Path) -> None:
    result = start(
        "services.intake",
        SANAD_TLS_CERT_FILE=str(tmp_path / "absent.pem"),
        SANAD_TLS_KEY_FILE=str(pki / "intake.key"),
    )
    assert the_line(result).endswith(
        f"cannot start: SANAD_TLS_CERT_FILE: cannot read {tmp_path / 'absent.pem'}: "
        "No such file or directory"
    )


def test_a_certificate_and_key_that_are_no_pair_are_named(pki: Path) -> None:
    # gRPC itself only failed to bind the port, which was free.
    result = start(
        "services.registry",
        SANAD_TLS_CERT_FILE=str(pki / "registry.pem"),
        SANAD_TLS_KEY_FILE=str(pki / "intake.key"),
    )
    assert the_line(result).endswith(
        "cannot start: SANAD_TLS_CERT_FILE and SANAD_TLS_KEY_FILE: not a PEM certificate and "
        "the unencrypted private key that goes with it (KEY_VALUES_MISMATCH)"
    )


def test_a_cas_own_certificate_as_the_services_is_named(pki: Path) -> None:
    # gRPC itself only failed to bind the port, which was free.
    result = start(
        "services.intake",
        SANAD_TLS_CERT_FILE=str(pki / "ca.pem"),
        SANAD_TLS_KEY_FILE=str(pki / "ca.key"),
        SANAD_TLS_CA_FILE=str(pki / "ca.pem"),
    )
    assert the_line(result).endswith(
        f"cannot start: SANAD_TLS_CERT_FILE: {pki / 'ca.pem'} is a CA certificate (basicConstraints"
        " CA:TRUE), not one a client or service presents: give the certificate the CA issued to"
        " it, with its key; the CA's own goes in SANAD_TLS_CA_FILE"
    )


def test_a_ca_file_without_a_certificate_is_named(pki: Path) -> None:
    result = start(
        "services.metrics",
        SANAD_TLS_CERT_FILE=str(pki / "metrics.pem"),
        SANAD_TLS_KEY_FILE=str(pki / "metrics.key"),
        SANAD_TLS_CA_FILE=str(pki / "metrics.key"),
    )
    assert the_line(result).endswith(
        f"cannot start: SANAD_TLS_CA_FILE: no PEM certificate in {pki / 'metrics.key'} "
        "(NO_CERTIFICATE_OR_CRL_FOUND)"
    )


def test_a_jwt_key_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    result = start("services.registry", SANAD_AUTH_JWT_PUBLIC_KEY_FILE=str(tmp_path / "jwks"))
    assert the_line(result).endswith(
        f"cannot start: SANAD_AUTH_JWT_PUBLIC_KEY_FILE: cannot read {tmp_path / 'jwks'}: "
        "No such file or directory"
    )


@pytest.mark.parametrize("module", ["services.registry", "services.metrics"])
@pytest.mark.parametrize("setting", ["SANAD_TLS_CERT_FILE", "SANAD_AUTH_JWT_PUBLIC_KEY_FILE"])
def test_a_bad_file_is_told_before_the_wait_for_mongodb(
    module: str, setting: str, tmp_path: Path, pki: Path
) -> None:
    # Both services wait for MongoDB (here: nothing answers) before they serve; their files
    # are read first, so the operator is not kept waiting for the line that names the file.
    files = {
        "SANAD_TLS_CERT_FILE": str(pki / "registry.pem"),
        "SANAD_TLS_KEY_FILE": str(pki / "registry.key"),
        setting: str(tmp_path / "absent"),
    }
    result = start(module, **files)
    assert the_line(result).endswith(
        f"cannot start: {setting}: cannot read {tmp_path / 'absent'}: No such file or directory"
    )
    assert "MongoDB does not answer yet" not in result.stderr


@pytest.mark.parametrize(
    "module", ["services.registry", "services.intake", "services.metrics", "workers.ingest"]
)
def test_a_mongodb_tls_file_that_cannot_be_read_is_named(module: str, tmp_path: Path) -> None:
    # pymongo reads it as the client is built: every process stopped on a FileNotFoundError.
    absent = tmp_path / "mongo-ca.pem"
    result = start(module, SANAD_MONGO_TLS_CA_FILE=str(absent))
    assert the_line(result).endswith(
        f"cannot start: cannot read a MongoDB TLS file (No such file or directory: {absent}):"
        " fix SANAD_MONGO_TLS_CA_FILE, SANAD_MONGO_TLS_CERT_KEY_FILE or the TLS files"
        " SANAD_MONGO_URL names"
    )


def test_a_tls_file_the_mongodb_url_names_that_cannot_be_read_is_named() -> None:
    result = start(
        "workers.batch", SANAD_MONGO_URL="mongodb://127.0.0.1:1/?tlsCAFile=/nowhere/ca.pem"
    )
    assert the_line(result).endswith(
        "cannot start: cannot read a MongoDB TLS file (The tlscafile file is not readable):"
        " fix SANAD_MONGO_TLS_CA_FILE, SANAD_MONGO_TLS_CERT_KEY_FILE or the TLS files"
        " SANAD_MONGO_URL names"
    )
