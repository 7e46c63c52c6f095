"""The system started the way `make run` starts it, driven over gRPC and through sanadctl."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sanad.devstack.mongo_server import free_port
from tests.conftest import AMQP_URL, unique

pytestmark = pytest.mark.e2e


class Devstack:
    """`python -m sanad.devstack` on free ports with its own data folder and queue prefix."""

    def __init__(self, data: Path) -> None:
        self.ports = {name: free_port() for name in ("registry", "intake", "metrics")}
        self.env = {
            **os.environ,
            "SANAD_DEVSTACK_DATA": str(data),
            "SANAD_DEVSTACK_MONGO_PORT": str(free_port()),
            "SANAD_AMQP_URL": AMQP_URL,
            "SANAD_AMQP_PREFIX": unique("e2e"),
            "SANAD_REGISTRY_PORT": str(self.ports["registry"]),
            "SANAD_INTAKE_PORT": str(self.ports["intake"]),
            "SANAD_METRICS_PORT": str(self.ports["metrics"]),
            "SANAD_REGISTRY_TARGET": f"127.0.0.1:{self.ports['registry']}",
            "SANAD_INTAKE_TARGET": f"127.0.0.1:{self.ports['intake']}",
            "SANAD_METRICS_TARGET": f"127.0.0.1:{self.ports['metrics']}",
            "SANAD_REGISTRY_METRICS_PORT": str(free_port()),
            "SANAD_INTAKE_METRICS_PORT": str(free_port()),
            "SANAD_METRICS_METRICS_PORT": str(free_port()),
            "SANAD_INGEST_HEALTH_PORT": str(free_port()),
            "SANAD_INGEST_METRICS_PORT": str(free_port()),
        }
        self.env.pop("SANAD_MONGO_URL", None)
        self.log = data / "devstack.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sanad.devstack"],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "sanad.cli", *args],
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"sanadctl {args} failed: {result.stderr}")
        return result

    def wait_healthy(self, within_s: float = 90) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"devstack exited: {self.log.read_text()[-3000:]}")
            if self.ctl("health", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"not healthy in time: {self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    stack = Devstack(tmp_path_factory.mktemp("devstack"))
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(timeout=60) == 0, "devstack did not stop cleanly"


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
