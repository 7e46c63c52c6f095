"""Against the real broker, through a proxy that can cut or freeze the connection: a worker's
consumer reports the lost broker, consumes again once it is back, and stops in bounded time
while the broker does not answer."""

import asyncio
from collections.abc import AsyncIterator, Sequence

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import SUBMITTED, Topology
from sanad.amqp.verdicts import Outcome
from tests.conftest import AMQP_URL
from tests.integration.broker_support import BrokerProxy, proxy_fixture  # noqa: F401
from tests.integration.conftest import eventually
from workers.lifecycle import consume_until_stopped

pytestmark = pytest.mark.integration


class Worker:
    """A consumer through the proxy, run the way the workers run it; records what it handled."""

    def __init__(self, proxy: BrokerProxy, topology: Topology) -> None:
        self.handled: list[bytes] = []
        options = BatchOptions(max_wait_s=0.05, broker_timeout_s=1.0)
        self.consumer = MicroBatchConsumer(
            proxy.url, topology, topology.ingest_queue, self._handle, options
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _handle(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        self.handled.extend(message.body for message in batch)
        return [None] * len(batch)

    async def start(self) -> None:
        self.task = asyncio.create_task(consume_until_stopped(self.consumer, self.stop))
        await eventually(self.connected, within_s=10, every_s=0.05)

    async def connected(self) -> bool:
        return self.consumer.connected

    async def disconnected(self) -> bool:
        return not self.consumer.connected

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def worker(proxy: BrokerProxy, amqp_prefix: str) -> AsyncIterator[Worker]:
    running = Worker(proxy, Topology(amqp_prefix))
    await running.start()
    yield running
    proxy.thaw()
    if proxy.server is None:
        await proxy.heal()
    await running.close()


async def publish(topology: Topology, body: bytes) -> None:
    """Straight to the broker, not through the proxy, confirmed."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        await exchange.publish(aio_pika.Message(body), routing_key=SUBMITTED)


async def test_an_idle_consumer_reports_the_lost_broker_and_serving_again_once_back(
    proxy: BrokerProxy, worker: Worker
) -> None:
    await proxy.cut()

    await eventually(worker.disconnected, within_s=5, every_s=0.05)
    await proxy.heal()
    await eventually(worker.connected, within_s=20, every_s=0.1)


async def test_an_idle_consumer_consumes_again_after_the_broker_comes_back(
    proxy: BrokerProxy, worker: Worker, amqp_prefix: str
) -> None:
    await proxy.cut()
    await asyncio.sleep(1.0)  # the worker notices while idle, and retries while cut
    await proxy.heal()
    await publish(Topology(amqp_prefix), b"after the outage")

    async def handled() -> bool:
        return worker.handled == [b"after the outage"]

    await eventually(handled, within_s=30, every_s=0.1)


async def test_a_stop_while_the_broker_does_not_answer_ends_within_the_broker_timeout(
    proxy: BrokerProxy, worker: Worker
) -> None:
    proxy.freeze()
    worker.stop.set()

    assert worker.task is not None
    # The cancel and the close each wait at most broker_timeout_s (1s); without a bound the
    # cancel waited for its CancelOk until SIGKILL. The bound is the behaviour: 20 s, ten times
    # the two waits, turns such a wait into a TimeoutError.
    await asyncio.wait_for(asyncio.shield(worker.task), 20)


async def test_connecting_to_a_broker_that_does_not_answer_fails_within_the_broker_timeout(
    proxy: BrokerProxy, amqp_prefix: str
) -> None:
    async def never_called(batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        raise AssertionError("nothing is consumed")

    topology = Topology(amqp_prefix)
    options = BatchOptions(broker_timeout_s=1.0)
    consumer = MicroBatchConsumer(proxy.url, topology, topology.ingest_queue, never_called, options)
    proxy.freeze()

    running = asyncio.create_task(consumer.run(asyncio.Event()))
    # The bound is the behaviour: without the 1 s broker timeout connecting waits for ever; 10 s
    # turns that into a failure. The timeout's own TimeoutError shows which ended it.
    done, _ = await asyncio.wait({running}, timeout=10)
    running.cancel()

    assert running in done  # a TimeoutError, a broker error: consume_until_stopped retries
    assert isinstance(running.exception(), TimeoutError)
