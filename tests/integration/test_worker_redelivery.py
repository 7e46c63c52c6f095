"""A worker killed while the broker has not yet seen its acks: what it stored but never had
acknowledged is redelivered to the next worker, and stored and counted once (DESIGN §5,
invariant 2).

Deterministic, where a SIGKILL at a random moment seldom lands between a commit and its ack:
the worker's broker connection goes through a proxy, frozen once the worker has stored some,
so every ack after that is held back; what it stores meanwhile is stored but unacknowledged
when it is killed. (It replaces a test that killed a worker at a random point of 20,000
submissions, in 25 s, and that a worker counting redelivered submissions again still passed.)"""

import asyncio
import signal
import uuid

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from tests.integration.broker_support import BrokerProxy, proxy_fixture  # noqa: F401
from tests.integration.conftest import Stack, eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, settled
from tests.integration.workers_support import (
    delete_retry_queues,
    deliveries,
    end_abandoned_transactions,
    publish,
    start_ingest_worker,
    submitted,
)

pytestmark = [pytest.mark.integration, needs_rabbitmqctl]

COUNT = 2000


async def test_submissions_stored_but_unacked_are_redelivered_and_counted_once(
    stack: Stack, mongo_url: str, proxy: BrokerProxy
) -> None:
    topology = Topology(stack.prefix)
    center = f"C-{uuid.uuid4().hex[:8]}"
    events = [
        (SUBMITTED, submitted(f"R{n:06d}", center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for n in range(COUNT)
    ]
    await publish(stack.amqp_url, topology.transactions_exchange, events)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    worker = start_ingest_worker(stack, SANAD_AMQP_URL=proxy.url, SANAD_INGEST_BATCH_MAX="50")
    try:

        async def stored_at_least(count: int) -> bool:
            return await db.transactions.estimated_document_count() >= count

        await eventually(lambda: stored_at_least(100), within_s=60, every_s=0.02)
        proxy.freeze()  # from here no ack reaches the broker
        at_freeze = await db.transactions.count_documents({})
        await asyncio.sleep(2.0)  # the worker goes on storing what it was delivered
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = await db.transactions.count_documents({})
        # Some stored and never acknowledged, and some left: else the test proves nothing.
        assert at_freeze < at_kill < COUNT, (at_freeze, at_kill)
        await proxy.cut()  # the broker sees the connection go: the unacked are redelivered
        await end_abandoned_transactions(db)
        worker = start_ingest_worker(stack)
        await eventually(lambda: stored_at_least(COUNT), within_s=120, every_s=0.2)
        # Every delivery handled and acked, the redeliveries of what was stored before too.
        await eventually(lambda: settled(topology.ingest_queue), within_s=60, every_s=0.5)
        # The new worker was handed what the first stored and never had acknowledged, too.
        consumed = await asyncio.to_thread(deliveries, stack.env["SANAD_INGEST_METRICS_PORT"])
        assert consumed > COUNT - at_kill, (consumed, at_kill)
        assert await db.transactions.count_documents({}) == COUNT
        rollups = await db.rollups.find({"center_id": center}).to_list()
        assert sum(r["submitted"] for r in rollups) == COUNT
        assert sum(r["fees_baisa"] for r in rollups) == COUNT * 5000
        assert await stack.queue_depth(topology.ingest_queue) == 0
        assert await stack.queue_depth(topology.dead_queue(topology.ingest_queue)) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
        await delete_retry_queues(stack)
