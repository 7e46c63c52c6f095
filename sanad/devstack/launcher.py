"""Starts the whole stack as `make run` does, on free ports, for end-to-end tests and benchmarks."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sanad.amqp.topology import delete_topology
from sanad.devstack import mongo_server, secure
from sanad.devstack.certs import CERTS_KEY
from sanad.devstack.layout import INGEST_PORT_STEP, MAX_INGEST_WORKERS
from sanad.devstack.mongo_server import free_port
from sanad.devstack.orphans import guarded

SERVICES = ("registry", "intake", "metrics")


class LaunchedStack:
    """`python -m sanad.devstack` with its own data folder, queue prefix and free ports.

    Secure (the default, as `make run`): its own dev PKI under data/certs, and `ctl` acts as
    the example admin over mutual TLS. `secure=False` launches the plaintext stack.
    """

    def __init__(
        self,
        data: Path,
        amqp_url: str,
        extra_env: dict[str, str] | None = None,
        *,
        secure_mode: bool = True,
    ) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        self.metrics_ports = {name: free_port() for name in (*SERVICES, "batch")}
        # Extra ingest workers listen INGEST_PORT_STEP above the first one's ports: each of
        # those free too, however many workers extra_env asks for (one was this stack's own
        # MongoDB port once, and its second worker could not start).
        series = (MAX_INGEST_WORKERS, INGEST_PORT_STEP)
        self.metrics_ports["ingest"] = free_port(*series)
        self.mongo_port = free_port()
        self.env = {
            **os.environ,
            "SANAD_DEVSTACK_DATA": str(data),
            "SANAD_DEVSTACK_MONGO_PORT": str(self.mongo_port),
            "SANAD_AMQP_URL": amqp_url,
            "SANAD_AMQP_PREFIX": f"stack-{uuid.uuid4().hex[:10]}",
            "SANAD_INGEST_HEALTH_PORT": str(free_port(*series)),
            "SANAD_INGEST_METRICS_PORT": str(self.metrics_ports["ingest"]),
            "SANAD_BATCH_HEALTH_PORT": str(free_port()),
            "SANAD_BATCH_METRICS_PORT": str(self.metrics_ports["batch"]),
        }
        for name in SERVICES:
            upper = name.upper()
            self.env[f"SANAD_{upper}_PORT"] = str(self.ports[name])
            self.env[f"SANAD_{upper}_TARGET"] = self.target(name)
            self.env[f"SANAD_{upper}_METRICS_PORT"] = str(self.metrics_ports[name])
        self.data = data
        self.env.pop("SANAD_MONGO_URL", None)
        for key in secure.CLIENT_KEYS:
            self.env.pop(key, None)
        self.certs: Path | None = None
        if secure_mode:
            self.certs = (data / "certs").resolve()
            secure.ensure_pki(self.certs)
            self.env[CERTS_KEY] = str(self.certs)
            self.env.update(secure.admin_client_env(self.certs))
        else:
            self.env[secure.PLAINTEXT_KEY] = "1"
        self.env.update(extra_env or {})
        self.log = data / "devstack.log"
        self.process = subprocess.Popen(
            # Killed before it could stop the stack (a benchmark interrupted with SIGTERM), its
            # owner would leave the stack running: the kernel stops it instead, as a SIGTERM does.
            guarded([sys.executable, "-m", "sanad.devstack"], signal.SIGTERM),
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def target(self, name: str) -> str:
        """host:port of a service's gRPC endpoint."""
        return f"127.0.0.1:{self.ports[name]}"

    @property
    def mongo_url(self) -> str:
        return mongo_server.url(self.mongo_port)

    def ctl(
        self, *args: str, check: bool = True, token: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run sanadctl against this stack (as the admin, or as a token's identity)."""
        env = {**self.env, "SANAD_TOKEN": token} if token else self.env
        result = subprocess.run(
            [sys.executable, "-m", "sanad.cli", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"sanadctl {args} failed: {result.stderr}")
        return result

    def wait_healthy(self, within_s: float = 90) -> None:
        """Until `sanadctl health` says every service is SERVING."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"devstack exited: {self.log.read_text()[-3000:]}")
            if self.ctl("health", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"not healthy in time: {self.log.read_text()[-3000:]}")

    def child_pids(self) -> dict[int, str]:
        """pid -> command line of every process the devstack started."""
        return children_of(self.process.pid)

    def stop(self) -> int:
        """Ctrl-C the stack, delete its queues, and return its exit code."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=90)
        # In a thread of its own: callers may or may not be inside an event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(
                asyncio.run,
                delete_topology(self.env["SANAD_AMQP_URL"], self.env["SANAD_AMQP_PREFIX"]),
            ).result(timeout=60)
        return code


def children_of(parent: int) -> dict[int, str]:
    """pid -> command line of every running process whose parent is `parent`."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[int(entry.name)] = cmdline.strip()
    return found
