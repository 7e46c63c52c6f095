"""In-process services against the real RabbitMQ and the MongoDB-wire server, isolated per test."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import grpc
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.topology import Topology, delete_topology
from sanad.devstack import mongo_server
from sanad.devstack.mongo_server import free_port
from sanad.settings import amqp_user
from sanad.v1 import (
    common_pb2,
    intake_pb2,
    intake_pb2_grpc,
    metrics_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.intake.app import IntakeApp
from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.metrics.app import build_app as build_metrics
from services.metrics.settings import MetricsSettings
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.conftest import discard
from tests.integration.registry_support import centre, visa_renewal

pytestmark = pytest.mark.integration


class StoppableDatabase:
    """A SecantusDB of one test's own, on a storage folder, that can be stopped and restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = mongo_server.free_port()
        self.url = mongo_server.url(self.port)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = mongo_server.start(self.port, self.folder / "data", self.folder / "db.log")

    def freeze(self) -> None:
        """Stop the server answering (SIGSTOP), its connections left open, as a server that
        hangs; `thaw` lets it go on where it stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.process.pid}/stat")
        for _ in range(1000):  # the signal is delivered later: what comes first is answered
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
                return
            time.sleep(0.001)
        raise AssertionError("the database did not stop within a second of SIGSTOP")

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server takes no SIGTERM
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def discard(self) -> None:
        """Kill the server as the test ends (tests.conftest.discard); a frozen one too."""
        if self.process is not None:
            discard(self.process)
            self.process = None


@pytest.fixture(scope="session")
def failpoint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB that takes configureFailPoint (off by default, as on mongod;
    sanad.devstack.mongo_server never turns it on), shared by the tests that fail commands on
    purpose: one start instead of one per test (1.4 s each, 18 tests)."""
    port = mongo_server.free_port()
    log = tmp_path_factory.mktemp("failpoints") / "secantus.log"
    process = mongo_server.start(port, ":memory:", log_path=log, test_commands=True)
    try:
        yield mongo_server.url(port)
    finally:
        discard(process)


@pytest.fixture
def failpoint_database(failpoint_server: str) -> Iterator[str]:
    """The failpoint server for one test (its data apart by its own database name), with
    every failpoint off again when the test ends, whatever it left on."""
    yield failpoint_server
    with MongoClient(failpoint_server, serverSelectionTimeoutMS=10_000) as client:
        client.admin.command("configureFailPoint", "failCommand", mode="off")


@pytest.fixture
def stoppable_database(tmp_path: Path) -> Iterator[StoppableDatabase]:
    db = StoppableDatabase(tmp_path)
    db.start()
    yield db
    db.discard()


@dataclass
class Stack:
    """Registry, intake and metrics served in-process; the worker runs as its own process."""

    env: dict[str, str]
    registry: registry_pb2_grpc.RegistryServiceStub
    intake: intake_pb2_grpc.IntakeServiceStub
    metrics: metrics_pb2_grpc.MetricsServiceStub
    amqp_url: str
    prefix: str
    intake_app: IntakeApp

    async def wait_for_snapshot(self, center_id: str, licence_status: str = "ACTIVE") -> None:
        """Until intake's registry snapshot shows the centre with that licence status."""

        async def seen() -> bool:
            view = self.intake_app.snapshot.centers.get(center_id)
            return (
                self.intake_app.snapshot.ready
                and view is not None
                and (view.licence_status == licence_status)
            )

        await eventually(seen, within_s=5)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """python -m workers.ingest with this stack's settings and free ports."""
        return subprocess.Popen([sys.executable, "-m", "workers.ingest"], env=self.env)

    async def queue_depth(self, queue: str) -> int:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)


def in_process_settings(mongo_url: str, database: str, **more: Any) -> dict[str, Any]:
    """What every service served in-process here is given: this test's database, loopback
    gRPC and a short grace; `more` adds to or overrides it."""
    return {
        "mongo_url": mongo_url,
        "mongo_database": database,
        "grpc_host": "127.0.0.1",
        "shutdown_grace_s": 1.0,
        **more,
    }


def worker_env(
    mongo_url: str, database: str, amqp_url: str, prefix: str, **more: str
) -> dict[str, str]:
    """The environment a worker process is started with: this test's database and broker
    prefix, plain logs; `more` adds the worker's own settings."""
    return {
        **os.environ,
        "SANAD_MONGO_URL": mongo_url,
        "SANAD_MONGO_DATABASE": database,
        "SANAD_AMQP_URL": amqp_url,
        "SANAD_AMQP_PREFIX": prefix,
        "SANAD_LOG_PLAIN": "1",
        **more,
    }


@dataclass(frozen=True)
class Served:
    """A registry and an intake following it, served in this process."""

    registry_port: int
    intake: IntakeApp
    intake_port: int


@contextlib.asynccontextmanager
async def served_intake(
    mongo_url: str, database: str, amqp_url: str, amqp_prefix: str, **intake_settings: Any
) -> AsyncIterator[Served]:
    """A registry and an intake (given intake_settings beside the common ones), once intake is
    healthy; both stopped and the broker topology deleted after."""
    common = in_process_settings(mongo_url, database, amqp_url=amqp_url, amqp_prefix=amqp_prefix)
    registry = build_registry(RegistrySettings(**common))
    registry_port = await registry.start(0)
    intake = build_intake(
        IntakeSettings(**common, registry_target=f"127.0.0.1:{registry_port}", **intake_settings)
    )
    try:
        intake_port = await intake.start(0)
        assert intake.server is not None
        await eventually(intake.server.health.check_once, within_s=15)
        yield Served(registry_port, intake, intake_port)
    finally:
        await intake.stop()
        await registry.stop()
        await delete_topology(amqp_url, amqp_prefix)


@pytest.fixture
async def stack(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> AsyncIterator[Stack]:
    async with served_intake(mongo_url, database_name, amqp_url, amqp_prefix) as up:
        common = in_process_settings(
            mongo_url, database_name, amqp_url=amqp_url, amqp_prefix=amqp_prefix
        )
        registry_target = f"127.0.0.1:{up.registry_port}"
        metrics = build_metrics(MetricsSettings(**common, registry_target=registry_target))
        metrics_port = await metrics.start(0)
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            for port in (up.registry_port, up.intake_port, metrics_port)
        ]
        yield Stack(
            env=worker_env(
                mongo_url,
                database_name,
                amqp_url,
                amqp_prefix,
                SANAD_INGEST_HEALTH_PORT=str(free_port()),
                SANAD_INGEST_METRICS_PORT=str(free_port()),
                # As make run and the deployments: only intake's user's messages are stored.
                SANAD_INGEST_PUBLISHERS=amqp_user(amqp_url),
            ),
            registry=registry_pb2_grpc.RegistryServiceStub(channels[0]),
            intake=intake_pb2_grpc.IntakeServiceStub(channels[1]),
            metrics=metrics_pb2_grpc.MetricsServiceStub(channels[2]),
            amqp_url=amqp_url,
            prefix=amqp_prefix,
            intake_app=up.intake,
        )
        for channel in channels:
            await channel.close()
        await metrics.stop()


@pytest.fixture
async def db(stack: Stack, mongo_url: str) -> AsyncIterator[AsyncDatabase[Any]]:
    """The stack's database, through a client of the test's own."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[stack.env["SANAD_MONGO_DATABASE"]]
    await client.close()


async def eventually(
    probe: Callable[[], Awaitable[bool]], within_s: float = 15.0, every_s: float = 0.1
) -> None:
    """Wait until probe() is true; fail with a clear message after within_s."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"condition not reached within {within_s}s")


@pytest.fixture
async def required_auth_registry(
    mongo_url: str, database_name: str, pki: Path
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a registry served in-process that requires tokens signed by the session
    PKI's JWT key; the tests bring their own tokens."""
    app = build_registry(
        RegistrySettings(
            **in_process_settings(
                mongo_url,
                database_name,
                auth_mode="required",
                auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
            )
        )
    )
    port = await app.start(0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await app.stop()


async def open_centre_with_service(stack: Stack, fee_baisa: int = 5000) -> tuple[str, str]:
    """Add a catalogue service and a centre offering it with an active licence."""
    code = f"ROP-VISA-{time.time_ns()}"
    await stack.registry.AddCatalogService(
        registry_pb2.AddCatalogServiceRequest(service=visa_renewal(code, fee_baisa))
    )
    reply = await stack.registry.RegisterCenter(
        registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}", code))
    )
    center_id = reply.center.id
    for action in (registry_pb2.LICENCE_ACTION_APPROVE, registry_pb2.LICENCE_ACTION_ACTIVATE):
        await stack.registry.TransitionLicence(
            registry_pb2.TransitionLicenceRequest(center_id=center_id, action=action, reason="ok")
        )
    await stack.wait_for_snapshot(center_id)
    return center_id, code


COUNTER = common_pb2.CHANNEL_COUNTER


def submit_request(
    center_id: str, service: str, request_id: str = "", **changes: object
) -> intake_pb2.SubmitTransactionRequest:
    """A valid counter submission of 5 rial; `changes` override its fields."""
    fields: dict[str, object] = {
        "request_id": request_id,
        "center_id": center_id,
        "service_code": service,
        "channel": COUNTER,
        "fee_baisa": 5000,
        "beneficiary_civil_number": "90817263",
    }
    fields.update(changes)
    return intake_pb2.SubmitTransactionRequest(**fields)


@pytest.fixture
async def topology(amqp_url: str, amqp_prefix: str) -> AsyncIterator[Topology]:
    """This test's exchanges and queues, declared on the real broker; deleted afterwards."""
    declared = Topology(amqp_prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declared.declare(await connection.channel())
        yield declared
        for name in declared.all_queues():
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
