"""deploy/alertmanager/alertmanager.yml in a real Alertmanager (Debian's prometheus-alertmanager):
a MongoDB outage pages once for every job, and the alerts it explains are held back.

The routes, grouping and inhibitions are the file's own; only its timings are shortened and each
receiver given a webhook to this test's listener, as a deployment attaches its pager.
"""

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sanad.devstack.mongo_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
JOBS = ("sanad-registry", "sanad-intake", "sanad-metrics", "sanad-ingest", "sanad-batch")
WORKERS = ("sanad-ingest", "sanad-batch")


class Notifications:
    """What Alertmanager posted to each receiver's webhook, in order."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def of(self, receiver: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for name, body in self.received if name == receiver]


@pytest.fixture
def listener() -> Iterator[tuple[int, Notifications]]:
    notifications = Notifications()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with notifications.lock:
                notifications.received.append((self.path.strip("/"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], notifications
    finally:
        server.shutdown()
        server.server_close()


class Alertmanager:
    def __init__(self, port: int) -> None:
        self.port = port

    def post(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200

    def alerts(self) -> list[dict[str, Any]]:
        address = f"http://127.0.0.1:{self.port}/api/v2/alerts"
        with urllib.request.urlopen(address, timeout=10) as reply:
            found: list[dict[str, Any]] = json.loads(reply.read())
            return found


@pytest.fixture
def alertmanager(tmp_path: Path, listener: tuple[int, Notifications]) -> Iterator[Alertmanager]:
    """The project's configuration with timings of seconds and a webhook on each receiver."""
    hook_port, _ = listener
    config = yaml.safe_load(CONFIG.read_text())
    config["route"] |= {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}
    for route in config["route"].get("routes", []):
        route.pop("repeat_interval", None)
    for receiver in config["receivers"]:
        url = f"http://127.0.0.1:{hook_port}/{receiver['name']}"
        receiver["webhook_configs"] = [{"url": url, "send_resolved": False}]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=(tmp_path / "alertmanager.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        ready = f"http://127.0.0.1:{port}/-/ready"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            try:
                with urllib.request.urlopen(ready, timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Alertmanager was not ready within 30 s"
                time.sleep(0.2)
        yield Alertmanager(port)
    finally:
        process.terminate()
        process.wait(timeout=30)


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "system": "sanad-mesh", **labels},
        "annotations": {"summary": name},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def wait_for(notifications: Notifications, receiver: str, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not notifications.of(receiver):
        assert time.monotonic() < deadline, f"nothing sent to {receiver} within {within_s}s"
        time.sleep(0.1)


def fired(notifications: Notifications, receiver: str) -> list[tuple[str, ...]]:
    """Each notification to the receiver as its alerts' (alertname, job, dependency), sorted."""
    return sorted(
        tuple(
            sorted(
                (
                    a["labels"]["alertname"],
                    a["labels"].get("job", ""),
                    a["labels"].get("dependency", ""),
                )
                for a in body["alerts"]
            )
        )
        for body in notifications.of(receiver)
    )


def test_a_mongodb_outage_pages_once_for_every_job(
    alertmanager: Alertmanager, listener: tuple[int, Notifications]
) -> None:
    _, notifications = listener
    alertmanager.post(
        [
            *(alert("SanadNotServing", "page", job=job, dependency="mongodb") for job in JOBS),
            # The workers wait for MongoDB with no broker connection, and retry their batch.
            *(alert("SanadNotServing", "page", job=job, dependency="rabbitmq") for job in WORKERS),
            *(alert("SanadWorkerRetrying", "page", job=job, queue=job[6:]) for job in WORKERS),
            *(alert("SanadAuditEventsWaiting", "ticket", job=job) for job in JOBS[:3]),
        ]
    )
    wait_for(notifications, "sanad-page")
    wait_for(notifications, "sanad-ticket")
    # Every alert has been judged by now (inhibited alerts are marked before a flush).
    states = {
        (a["labels"]["alertname"], a["labels"]["job"], a["labels"].get("dependency", "")): a[
            "status"
        ]["state"]
        for a in alertmanager.alerts()
    }
    held_back = {key for key, state in states.items() if state == "suppressed"}
    assert held_back == {
        *(("SanadNotServing", job, "rabbitmq") for job in WORKERS),
        *(("SanadWorkerRetrying", job, "") for job in WORKERS),
    }
    time.sleep(2.5)  # a second flush of the groups (group_interval 2 s) adds nothing
    assert fired(notifications, "sanad-page") == [
        tuple(sorted(("SanadNotServing", job, "mongodb") for job in JOBS))
    ]
    assert fired(notifications, "sanad-ticket") == [
        tuple(sorted(("SanadAuditEventsWaiting", job, "") for job in JOBS[:3]))
    ]


def test_a_broker_outage_is_not_held_back_by_a_mongodb_one_elsewhere(
    alertmanager: Alertmanager, listener: tuple[int, Notifications]
) -> None:
    # intake's rabbitmq check does not wait on MongoDB; a worker's rabbitmq failure without its
    # own mongodb failure is the broker's; a worker retrying with MongoDB answering it is its own.
    _, notifications = listener
    alertmanager.post(
        [
            alert("SanadNotServing", "page", job="sanad-intake", dependency="mongodb"),
            alert("SanadNotServing", "page", job="sanad-intake", dependency="rabbitmq"),
            alert("SanadNotServing", "page", job="sanad-ingest", dependency="rabbitmq"),
            alert("SanadWorkerRetrying", "page", job="sanad-batch", queue="batch"),
        ]
    )
    wait_for(notifications, "sanad-page")
    assert all(a["status"]["state"] == "active" for a in alertmanager.alerts())
    deadline = time.monotonic() + 10
    while len(notifications.of("sanad-page")) < 3:
        assert time.monotonic() < deadline, fired(notifications, "sanad-page")
        time.sleep(0.1)
    assert fired(notifications, "sanad-page") == sorted(
        [
            (("SanadNotServing", "sanad-intake", "mongodb"),),
            (
                ("SanadNotServing", "sanad-ingest", "rabbitmq"),
                ("SanadNotServing", "sanad-intake", "rabbitmq"),
            ),
            (("SanadWorkerRetrying", "sanad-batch", ""),),
        ]
    )
