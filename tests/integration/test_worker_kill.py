"""A worker SIGKILLed in the middle of 20,000 submissions loses and doubles nothing."""

import signal
import uuid

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from tests.integration.conftest import Stack, eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, settled
from tests.integration.workers_support import (
    delete_retry_queues,
    end_abandoned_transactions,
    publish,
    submitted,
)

pytestmark = [pytest.mark.integration, needs_rabbitmqctl]

COUNT = 20_000


async def test_a_worker_killed_mid_20000_leaves_exactly_20000_stored_and_counted(
    stack: Stack, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    center = f"C-{uuid.uuid4().hex[:8]}"
    events = [
        (SUBMITTED, submitted(f"K{n:08d}", center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for n in range(COUNT)
    ]
    await publish(stack.amqp_url, topology.transactions_exchange, events)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]

    async def stored_at_least(count: int) -> bool:
        return await db.transactions.estimated_document_count() >= count

    worker = stack.start_worker()
    try:
        await eventually(lambda: stored_at_least(3000), within_s=60, every_s=0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = await db.transactions.count_documents({})
        # Partway, or nothing was left to redeliver and the test proves nothing.
        assert at_kill < COUNT, f"the kill came after all {COUNT} were stored"
        await end_abandoned_transactions(db)
        worker = stack.start_worker()
        await eventually(lambda: stored_at_least(COUNT), within_s=120, every_s=0.2)
        # Every delivery handled and acked, redeliveries of what was stored before the kill too.
        await eventually(lambda: settled(topology.ingest_queue), within_s=60, every_s=0.5)
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
