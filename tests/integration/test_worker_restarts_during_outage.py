"""Invariant 5 across restarts: a worker stopped while MongoDB is down leaves its micro-batch
unacknowledged, and the broker counts each such return as a delivery. A good message held
across many stops (a rolling deploy, a scale-in, restarts during a long outage) stays in its
work queue and is handled once the database is back; it never reaches the dead-letter queue."""

import asyncio
from collections.abc import Sequence

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import EARLIER_DELIVERY_LIMITS, SUBMITTED, Topology
from sanad.amqp.verdicts import Outcome, TransientError
from tests.integration.workers_support import queue_depth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# Two more stops than the delivery limit of the release before: there it was dead-lettered.
STOPS = max(EARLIER_DELIVERY_LIMITS) + 2


class Database:
    """A handler whose database is down until `up` is set; then it stores what it gets."""

    def __init__(self) -> None:
        self.up = False
        self.attempted = asyncio.Event()
        self.stored: list[bytes] = []
        self.took = asyncio.Event()

    async def __call__(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        self.attempted.set()
        if not self.up:
            raise TransientError("MongoDB is unreachable")
        self.stored += [message.body for message in batch]
        self.took.set()
        return [None] * len(batch)


async def run_until_handled(
    amqp_url: str, topology: Topology, database: Database, *, stop_after_attempt: bool
) -> None:
    """One worker life: started, handed the message, stopped (SIGTERM) after one attempt."""
    consumer = MicroBatchConsumer(
        amqp_url,
        topology,
        topology.ingest_queue,
        database,
        BatchOptions(broker_timeout_s=5, drain_grace_s=0.5, max_backoff_s=0.2),
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    database.attempted.clear()
    try:
        async with asyncio.timeout(15):
            await (database.attempted if stop_after_attempt else database.took).wait()
    except TimeoutError:
        dead = await queue_depth(amqp_url, topology.dead_queue(topology.ingest_queue))
        pytest.fail(f"the worker was not handed the message; {dead} in the dead-letter queue")
    finally:
        stopping.set()
        await asyncio.wait_for(running, 30)


async def test_a_message_held_across_many_worker_stops_in_an_outage_is_handled_once_it_ends(
    amqp_url: str, topology: Topology
) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        await exchange.publish(aio_pika.Message(b"good", type="t"), routing_key=SUBMITTED)
    database = Database()

    for _ in range(STOPS):
        await run_until_handled(amqp_url, topology, database, stop_after_attempt=True)
    database.up = True
    await run_until_handled(amqp_url, topology, database, stop_after_attempt=False)

    assert database.stored == [b"good"]
    assert await queue_depth(amqp_url, topology.dead_queue(topology.ingest_queue)) == 0
    assert await queue_depth(amqp_url, topology.ingest_queue) == 0
