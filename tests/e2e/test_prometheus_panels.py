"""A real Prometheus scrapes the running system under load; every alert and panel query runs.

The system starts as `make run` starts it (sanad.devstack.launcher.LaunchedStack, the batch
worker included, on free ports); Debian's /usr/bin/prometheus scrapes every process each second
and loads our alert rules.
RabbitMQ's rabbitmq_prometheus plugin is NOT enabled on the CI machine (and we do not enable it),
so panel queries on `rabbitmq_*` metrics are exempt exactly when port 15692 does not answer.
"""

import asyncio
import contextlib
import io
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sanad.cli import __main__ as cli
from sanad.devstack.launcher import LaunchedStack
from sanad.devstack.mongo_server import free_port
from sanad.seed.batches import BatchLoader
from sanad.v1 import events_pb2, intake_pb2
from tests.conftest import AMQP_URL, unique
from tests.e2e.test_devstack import value

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RABBITMQ_PLUGIN_PORT = 15692
# Business metrics defined in sanad/telemetry/metrics.py whose increments the intake and worker
# code paths do not make yet (issue 6 report lists where). A panel reading only these may be
# empty; once one returns data the test fails so that it is taken off this list.


def plugin_enabled() -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", RABBITMQ_PLUGIN_PORT)) == 0


class System:
    """The devstack, the batch worker and a Prometheus scraping them."""

    def __init__(self, data: Path) -> None:
        self.data = data
        (data / "stack").mkdir()
        self.devstack = LaunchedStack(data / "stack", AMQP_URL)
        self.prometheus: subprocess.Popen[bytes] | None = None
        self.prometheus_port = free_port()

    def scrape_targets(self) -> dict[str, str]:
        env = self.devstack.env
        return {
            "sanad-registry": env["SANAD_REGISTRY_METRICS_PORT"],
            "sanad-intake": env["SANAD_INTAKE_METRICS_PORT"],
            "sanad-metrics": env["SANAD_METRICS_METRICS_PORT"],
            "sanad-ingest": env["SANAD_INGEST_METRICS_PORT"],
            "sanad-batch": env["SANAD_BATCH_METRICS_PORT"],
            "rabbitmq": str(RABBITMQ_PLUGIN_PORT),
        }

    def start_prometheus(self) -> None:
        jobs = [
            {
                "job_name": job,
                **({"metrics_path": "/metrics/per-object"} if job == "rabbitmq" else {}),
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
            for job, port in self.scrape_targets().items()
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in (ROOT / "deploy/prometheus/rules").glob("*.yml")],
            "scrape_configs": jobs,
        }
        path = self.data / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.data / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            ],
            stdout=(self.data / "prometheus.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        address = f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}?{query}"
        with urllib.request.urlopen(address, timeout=10) as reply:
            return json.loads(reply.read())

    def query(self, expr: str) -> list[Any]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[Any] = answer["data"]["result"]
        return result

    def wait_until(self, expr: str, within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                if self.query(expr):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{expr} returned nothing within {within_s}s")

    def stop(self) -> None:
        if self.prometheus is not None and self.prometheus.poll() is None:
            self.prometheus.terminate()
            self.prometheus.wait(timeout=30)
        self.devstack.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed (Debian package `prometheus`)")
    running = System(tmp_path_factory.mktemp("prometheus-e2e"))
    try:
        running.devstack.wait_healthy()
        running.start_prometheus()
        running.wait_until('up{job="sanad-batch"} == 1')
        drive_load(running)
        yield running
    finally:
        running.stop()


def in_process_ctl(system: System) -> Callable[..., subprocess.CompletedProcess[str]]:
    """sanadctl against the stack, run in this process: the load's two dozen commands cost
    1.4 to 3 s each as processes here (test_devstack runs the real command line)."""

    def ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args), environ=system.devstack.env)
        result = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"sanadctl {args} failed: {result.stderr}")
        return result

    return ctl


def drive_load(system: System) -> None:
    """A centre, submissions, one bad call, statistics calls and one batch of two items."""
    ctl = in_process_ctl(system)
    service = unique("ROP-VISA").upper()
    ctl(
        "catalogue", "add", "--code", service, "--agency", "ROP", "--name-ar", "تجديد تأشيرة",
        "--name-en", "Visa renewal", "--fee-baisa", "5000", "--sla-hours", "48",
    )  # fmt: skip
    registered = ctl(
        "centers", "register", "--licence-number", unique("DA-NIZ"), "--name-ar", "مركز الوسام",
        "--name-en", "Al Wisam Centre", "--owner", "مؤسسة الوسام", "--governorate", "DA",
        "--wilayat", "DA-BAH", "--omani-staff", "2", "--total-staff", "3", "--service", service,
    )  # fmt: skip
    center = value(registered.stdout, "id")
    ctl("licence", "approve", center, "--reason", "documents complete")
    ctl("licence", "activate", center, "--reason", "inspection passed")
    submitted = []
    deadline = time.monotonic() + 15
    while len(submitted) < 5:
        result = ctl(
            "submit", "--center", center, "--service", service, "--fee-baisa", "5000",
            "--civil-number", f"2468135{len(submitted)}", check=time.monotonic() > deadline,
        )  # fmt: skip
        if result.returncode == 0:
            submitted.append(value(result.stdout, "transaction_id"))
        else:
            time.sleep(0.2)
    for transaction in submitted:
        ctl("wait", transaction, "--status", "recorded", "--within", "30")
    finished = submitted[0]  # one completed and rated, one rejected: the outcome panels
    ctl("update-status", finished, "--status", "in_progress")
    ctl("update-status", finished, "--status", "completed")
    ctl("wait", finished, "--status", "completed", "--within", "30")
    ctl("rate", finished, "--rating", "5")
    ctl("update-status", submitted[1], "--status", "rejected", "--note", "documents expired")
    ctl("submit", "--center", "nope", "--service", "nope", "--fee-baisa", "-1",
        "--civil-number", "12ab", check=False)  # fmt: skip
    ctl("stats", center)
    ctl("report", "--governorate", "DA", "--year", "2026")
    ctl("leaderboard", "--governorate", "DA", "--year", "2026")
    asyncio.run(submit_batch(system, center, service))


async def submit_batch(system: System, center: str, service: str) -> None:
    items = [
        intake_pb2.SubmitTransactionRequest(
            request_id=unique("batch"),
            center_id=center,
            service_code=service,
            fee_baisa=5000,
            beneficiary_civil_number=f"1357924{i}",
        )
        for i in range(2)
    ]
    batch = events_pb2.BatchSubmission(batch_id=unique("b"), center_id=center, items=items)
    env = system.devstack.env
    loader = BatchLoader(env["SANAD_AMQP_URL"], env["SANAD_AMQP_PREFIX"], reply_timeout_s=30)
    await loader.load([batch])


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                queries.append((f"{board['uid']}: {panel['title']}", expr))
    return queries


def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/sanad-alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_every_process_is_scraped_and_up(system: System) -> None:
    for job in ("sanad-registry", "sanad-intake", "sanad-metrics", "sanad-ingest", "sanad-batch"):
        assert system.query(f'up{{job="{job}"}} == 1'), f"{job} is not up"


def test_every_alert_expression_runs_and_none_fires_on_a_healthy_system(system: System) -> None:
    for name, expr in alert_expressions():
        result = system.query(expr)
        if name == "SanadTargetDown" and not plugin_enabled():
            assert {r["metric"]["job"] for r in result} <= {"rabbitmq"}, result
        elif name != "SanadMessagesDeadLettered":  # the bad call above is refused, not queued
            assert result == [], (name, result)


def test_every_dashboard_panel_query_returns_data(system: System) -> None:
    # A rate() has data once Prometheus holds two samples after the load: asked again until
    # every panel has data, within a bound that only turns a panel that never gets any into
    # a failure (scrapes come every second).
    exempt = not plugin_enabled()
    waiting = [(t, e) for t, e in panel_queries() if not ("rabbitmq_" in e and exempt)]
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        waiting = [(title, expr) for title, expr in waiting if not system.query(expr)]
        if waiting:
            time.sleep(0.5)
    assert waiting == [], f"panel queries without data: {waiting}"
