"""The system started the way `make run` starts it, driven over gRPC and through sanadctl."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sanad.devstack import certs
from sanad.devstack.launcher import LaunchedStack
from sanad.security.tls import client_credentials
from tests.conftest import AMQP_URL, unique

pytestmark = pytest.mark.e2e


class Devstack(LaunchedStack):
    """The launched stack with the test run's broker."""

    def __init__(self, data: Path) -> None:
        super().__init__(data, AMQP_URL)


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    stack = Devstack(tmp_path_factory.mktemp("devstack"))
    try:
        stack.wait_healthy()
        yield stack
    finally:
        assert stack.stop() == 0, "devstack did not stop cleanly"


def value(output: str, key: str) -> str:
    for line in output.splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in output:\n{output}")


def open_centre(devstack: Devstack) -> tuple[str, str]:
    """A new catalogue service and an active centre offering it, as the README tour makes them."""
    service = unique("ROP-VISA").upper()
    devstack.ctl(
        "catalogue", "add", "--code", service, "--agency", "ROP", "--name-ar", "تجديد تأشيرة",
        "--name-en", "Visa renewal", "--fee-baisa", "5000", "--sla-hours", "48",
    )  # fmt: skip
    registered = devstack.ctl(
        "centers", "register", "--licence-number", unique("DA-NIZ"), "--name-ar", "مركز الوسام",
        "--name-en", "Al Wisam Centre", "--owner", "مؤسسة الوسام", "--governorate", "DA",
        "--wilayat", "DA-BAH", "--omani-staff", "2", "--total-staff", "3", "--service", service,
    )  # fmt: skip
    center = value(registered.stdout, "id")
    devstack.ctl("licence", "approve", center, "--reason", "documents complete")
    devstack.ctl("licence", "activate", center, "--reason", "inspection passed")
    return service, center


def submit_when_visible(devstack: Devstack, submit: tuple[str, ...], token: str = "") -> str:
    """Submit until intake has learnt of the new centre through its watch stream."""
    deadline = time.monotonic() + 10
    while True:
        late = time.monotonic() > deadline
        submitted = devstack.ctl(*submit, token=token, check=late)
        if submitted.returncode == 0:
            return value(submitted.stdout, "transaction_id")
        time.sleep(0.2)


def test_the_readme_tour_works_through_sanadctl(devstack: Devstack) -> None:
    service, center = open_centre(devstack)
    transaction = submit_when_visible(
        devstack,
        ("submit", "--center", center, "--service", service, "--fee-baisa", "5000",
         "--civil-number", "24681357"),
    )  # fmt: skip
    devstack.ctl("wait", transaction, "--status", "recorded", "--within", "30")
    shown = devstack.ctl("show", transaction)
    assert value(shown.stdout, "status") == "recorded"
    assert value(shown.stdout, "beneficiary") == "*****357"
    stats = devstack.ctl("stats", center)
    assert value(stats.stdout, "submitted") == "1"
    assert value(stats.stdout, "recorded") == "1"


def test_bad_input_gets_one_line_errors_and_a_non_zero_exit(devstack: Devstack) -> None:
    result = devstack.ctl(
        "submit",
        "--center",
        "nope",
        "--service",
        "nope",
        "--fee-baisa",
        "-1",
        "--civil-number",
        "12ab",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: INVALID_ARGUMENT")
    assert "beneficiary_civil_number" in result.stderr
    assert "Traceback" not in result.stderr
    assert devstack.ctl("health").returncode == 0


def admin_channel(devstack: Devstack, name: str) -> grpc.Channel:
    """A mutual-TLS channel to one service with the admin certificate `make run` issued."""
    assert devstack.certs is not None
    folder = devstack.certs
    credentials = client_credentials(
        str(folder / "ca.pem"), str(folder / "admin.pem"), str(folder / "admin.key")
    )
    return grpc.secure_channel(devstack.target(name), credentials)


def list_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    return {s.name for reply in replies for s in reply.list_services_response.service}


@pytest.mark.parametrize("name", ["registry", "intake", "metrics"])
def test_reflection_lists_the_service_and_health(devstack: Devstack, name: str) -> None:
    with admin_channel(devstack, name) as channel:
        names = list_services(channel)
    assert f"sanad.v1.{name.capitalize()}Service" in names
    assert "grpc.health.v1.Health" in names


def test_make_run_writes_the_admin_credentials_sanadctl_sources(devstack: Devstack) -> None:
    written = (devstack.data / "sanadctl.env").read_text()
    assert f"export SANAD_CERT_FILE='{devstack.certs}/admin.pem'" in written
    log = devstack.log.read_text()
    for name in ("registry", "intake", "metrics", "ingest-1", "batch"):
        assert any(
            name in line and "mutual TLS, auth required" in line for line in log.splitlines()
        )


@pytest.mark.parametrize("name", ["registry", "intake", "metrics"])
def test_a_client_without_a_certificate_is_refused_at_the_handshake(
    devstack: Devstack, name: str
) -> None:
    assert devstack.certs is not None
    server_only = client_credentials(str(devstack.certs / "ca.pem"))
    with (
        grpc.secure_channel(devstack.target(name), server_only) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        list_services(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("name", ["registry", "intake", "metrics"])
def test_a_client_certificate_from_another_ca_is_refused(
    devstack: Devstack, name: str, tmp_path: Path
) -> None:
    assert devstack.certs is not None
    foreign = certs.new_authority("Not the Sanad CA")
    key, certificate = certs.issue(foreign, "intruder", "admin")
    certs.write_pair(tmp_path, "intruder", key, certificate)
    credentials = client_credentials(
        str(devstack.certs / "ca.pem"),
        str(tmp_path / "intruder.pem"),
        str(tmp_path / "intruder.key"),
    )
    with (
        grpc.secure_channel(devstack.target(name), credentials) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        list_services(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tokens_act_as_their_identity_and_a_foreign_token_is_unauthenticated(
    devstack: Devstack, tmp_path: Path
) -> None:
    assert devstack.certs is not None
    tokens = devstack.certs / "tokens"
    operator = (tokens / "operator.jwt").read_text().strip()
    denied = devstack.ctl("centers", "list", token=operator, check=False)
    assert denied.returncode == 1
    assert denied.stderr.startswith("error: PERMISSION_DENIED: operator 'dakhiliyah-operator'")
    report = ("report", "--governorate", "DA", "--year", "2024")
    assert devstack.ctl(*report, token=operator).returncode == 0
    certs.make_dev_pki(tmp_path / "other")
    foreign = (tmp_path / "other" / "tokens" / "admin.jwt").read_text().strip()
    refused = devstack.ctl(*report, token=foreign, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: UNAUTHENTICATED: bad bearer token")


def test_a_centre_identity_submits_for_its_own_centre_only(devstack: Devstack) -> None:
    assert devstack.certs is not None
    service, center = open_centre(devstack)
    _, other = open_centre(devstack)
    subprocess.run(
        [sys.executable, "-m", "sanad.devstack.certs", "--out", str(devstack.certs), "client",
         "--role", "centre", "--subject", "nizwa-desk", "--center", center],
        check=True, capture_output=True,
    )  # fmt: skip
    desk = (devstack.certs / "tokens" / "nizwa-desk.jwt").read_text().strip()
    submit = ("submit", "--service", service, "--fee-baisa", "5000", "--civil-number", "13572468")
    own = submit_when_visible(devstack, (*submit, "--center", center), token=desk)
    assert devstack.ctl("show", own, token=desk).returncode == 0
    refused = devstack.ctl(*submit, "--center", other, token=desk, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: PERMISSION_DENIED")
