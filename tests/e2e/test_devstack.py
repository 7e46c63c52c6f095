"""The system started the way `make run` starts it, driven over gRPC and through sanadctl."""

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sanad.devstack.launcher import LaunchedStack
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


def test_the_readme_tour_works_through_sanadctl(devstack: Devstack) -> None:
    service = unique("ROP-VISA")
    devstack.ctl(
        "catalogue",
        "add",
        "--code",
        service,
        "--agency",
        "ROP",
        "--name-ar",
        "تجديد تأشيرة",
        "--name-en",
        "Visa renewal",
        "--fee-baisa",
        "5000",
        "--sla-hours",
        "48",
    )
    registered = devstack.ctl(
        "centers",
        "register",
        "--licence-number",
        unique("DA-NIZ"),
        "--name-ar",
        "مركز الوسام",
        "--name-en",
        "Al Wisam Centre",
        "--owner",
        "مؤسسة الوسام",
        "--governorate",
        "DA",
        "--wilayat",
        "DA-BAH",
        "--omani-staff",
        "2",
        "--total-staff",
        "3",
        "--service",
        service,
    )
    center = value(registered.stdout, "id")
    devstack.ctl("licence", "approve", center, "--reason", "documents complete")
    devstack.ctl("licence", "activate", center, "--reason", "inspection passed")
    transaction = ""
    deadline = time.monotonic() + 10
    while not transaction:  # intake learns of the centre through its watch stream
        submitted = devstack.ctl(
            "submit",
            "--center",
            center,
            "--service",
            service,
            "--fee-baisa",
            "5000",
            "--civil-number",
            "24681357",
            check=time.monotonic() > deadline,
        )
        if submitted.returncode == 0:
            transaction = value(submitted.stdout, "transaction_id")
        else:
            time.sleep(0.2)
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


@pytest.mark.parametrize("name", ["registry", "intake", "metrics"])
def test_reflection_lists_the_service_and_health(devstack: Devstack, name: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{devstack.ports[name]}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert f"sanad.v1.{name.capitalize()}Service" in names
    assert "grpc.health.v1.Health" in names
