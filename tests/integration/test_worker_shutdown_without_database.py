"""SIGTERM while MongoDB is unreachable: the worker drains within its grace, exits 0, and every
message it held is back in the queue, neither acked nor dead-lettered."""

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import pytest

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.topology import BATCH, SUBMITTED, Topology
from sanad.devstack.mongo_server import free_port
from sanad.records import SUBMITTED_TYPE
from sanad.v1 import events_pb2
from tests.integration.broker_support import BrokerProxy
from tests.integration.conftest import Stack, eventually
from tests.integration.workers_support import (
    counted,
    delete_retry_queues,
    has_consumer,
    publish,
    queue_depth,
    start_batch_worker,
    start_ingest_worker,
    submitted,
)

pytestmark = pytest.mark.integration

# In-flight handlers get this long after SIGTERM; then they are cancelled.
GRACE_S = 1.0
# The bound is the behaviour: the drain ends the wait on MongoDB at the grace instead of when
# MongoDB gives up. Grace, cancelling, closing the broker connection and the MongoDB client,
# process exit take 1.5 to 2.1 s (measured); the bound is generous, 10 times the grace. Before
# the drain was bounded a worker waited out a server selection of SANAD_MONGO_TIMEOUT_MS with
# MongoDB stopped (the handler called again after its backoff pause, then another in the
# client's close) and a reply that never came with MongoDB frozen, up to
# SANAD_MONGO_SOCKET_TIMEOUT_MS: both are set here past the bound, so that such a drain fails.
EXIT_WITHIN_S = 10.0
MONGO_TIMEOUT_MS = 12_000
MONGO_SOCKET_TIMEOUT_MS = 600_000


@dataclass(frozen=True)
class Worker:
    """How to start one kind of worker and what to give it."""

    start: Callable[..., subprocess.Popen[bytes]]
    metrics_port_setting: str
    queue: Callable[[Topology], str]
    messages: Callable[[], list[tuple[str, bytes, str]]]
    exchange: Callable[[Topology], str]


def _submissions() -> list[tuple[str, bytes, str]]:
    center = f"C-{uuid.uuid4().hex[:8]}"
    return [
        (SUBMITTED, submitted(f"D{n:06d}", center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for n in range(20)
    ]


def _batches() -> list[tuple[str, bytes, str]]:
    # Claiming the batch id is the handler's first MongoDB call: no registry needed before it.
    return [
        (
            BATCH,
            events_pb2.BatchSubmission(
                batch_id=f"drain-{uuid.uuid4().hex}", center_id="C-1"
            ).SerializeToString(),
            SUBMISSION_TYPE,
        )
        for _ in range(3)
    ]


WORKERS = {
    "ingest": Worker(
        start_ingest_worker,
        "SANAD_INGEST_METRICS_PORT",
        lambda topology: topology.ingest_queue,
        _submissions,
        lambda topology: topology.transactions_exchange,
    ),
    "batch": Worker(
        start_batch_worker,
        "SANAD_BATCH_METRICS_PORT",
        lambda topology: topology.batch_queue,
        _batches,
        lambda topology: topology.batch_exchange,
    ),
}


@pytest.fixture
async def database_proxy(mongo_url: str) -> AsyncIterator[BrokerProxy]:
    """The test database behind a TCP proxy (the one the broker tests use) that can be cut."""
    proxy = BrokerProxy(mongo_url)
    await proxy.heal()
    yield proxy
    await proxy.cut()


def _counting(metrics_port: str, metric: str) -> Callable[[], Awaitable[bool]]:
    """Whether the worker has counted metric at least once."""

    async def probe() -> bool:
        try:
            return await asyncio.to_thread(counted, metrics_port, metric) > 0
        except OSError:  # not serving metrics yet
            return False

    return probe


@pytest.mark.parametrize("unreachable", ["stopped", "frozen"])
@pytest.mark.parametrize("kind", sorted(WORKERS))
async def test_sigterm_while_the_database_is_unreachable_exits_promptly_and_loses_nothing(
    stack: Stack, database_proxy: BrokerProxy, kind: str, unreachable: str
) -> None:
    worker_kind = WORKERS[kind]
    topology = Topology(stack.prefix)
    queue = worker_kind.queue(topology)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        await topology.declare(await connection.channel())
    metrics_port = str(free_port())
    worker = worker_kind.start(
        stack,
        SANAD_MONGO_URL=database_proxy.url,
        SANAD_MONGO_TIMEOUT_MS=str(MONGO_TIMEOUT_MS),
        SANAD_MONGO_SOCKET_TIMEOUT_MS=str(MONGO_SOCKET_TIMEOUT_MS),
        SANAD_SHUTDOWN_GRACE_S=str(GRACE_S),
        **{worker_kind.metrics_port_setting: metrics_port},
    )
    try:
        await eventually(lambda: has_consumer(stack.amqp_url, queue), within_s=30)
        if unreachable == "stopped":
            await database_proxy.cut()  # refused, as a stopped server refuses
        else:
            database_proxy.freeze()  # connected, and no answer ever comes
        messages = worker_kind.messages()
        await publish(stack.amqp_url, worker_kind.exchange(topology), messages)
        # A micro-batch is in the handler, which waits on MongoDB: while it is stopped, for a
        # server to select and then, counted as a retry, again after a pause; while it is
        # frozen, for a reply.
        await eventually(_counting(metrics_port, "sanad_amqp_consumed_total"), within_s=30)
        if unreachable == "stopped":
            # A retry comes after a server selection has waited MONGO_TIMEOUT_MS.
            retried = _counting(metrics_port, "sanad_worker_retries_total")
            await eventually(retried, within_s=MONGO_TIMEOUT_MS / 1000 + 60)
        else:
            await asyncio.sleep(2.0)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 40)
        took = time.monotonic() - sent
        assert code == 0, f"exit code {code} after {took:.1f}s"
        assert took < EXIT_WITHIN_S, f"the drain took {took:.1f}s"

        async def all_returned() -> bool:
            return await queue_depth(stack.amqp_url, queue) == len(messages)

        await eventually(all_returned, within_s=30)
        assert await queue_depth(stack.amqp_url, topology.dead_queue(queue)) == 0
        assert await queue_depth(stack.amqp_url, topology.retry_queue(queue)) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)
        await delete_retry_queues(stack)
