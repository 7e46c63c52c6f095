"""The database stopped and restarted mid-stream: nothing lost, nothing counted twice or dead."""

import asyncio
import os
import signal
import uuid

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.devstack import mongo_server
from sanad.records import SUBMITTED_TYPE
from tests.integration.conftest import StoppableDatabase, eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, settled
from tests.integration.workers_support import (
    counted,
    ingest_worker,
    publish,
    queue_depth,
    submitted,
)

pytestmark = [pytest.mark.integration, needs_rabbitmqctl]

COUNT = 3000


def _retried(metrics_port: str) -> float:
    """The worker's count of micro-batches retried after a transient failure."""
    return counted(metrics_port, "sanad_worker_retries_total")


async def test_a_database_restarted_mid_stream_loses_nothing_and_dead_letters_nothing(
    stoppable_database: StoppableDatabase, topology: Topology, amqp_url: str, database_name: str
) -> None:
    center = f"C-{uuid.uuid4().hex[:8]}"
    events = [
        (SUBMITTED, submitted(f"R{n:07d}", center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for n in range(COUNT)
    ]
    env = {
        **os.environ,
        "SANAD_MONGO_URL": stoppable_database.url,
        "SANAD_MONGO_DATABASE": database_name,
        "SANAD_MONGO_TIMEOUT_MS": "1000",
        "SANAD_AMQP_URL": amqp_url,
        "SANAD_AMQP_PREFIX": topology.prefix,
        "SANAD_INGEST_HEALTH_PORT": str(mongo_server.free_port()),
        "SANAD_INGEST_METRICS_PORT": str(mongo_server.free_port()),
        # Small micro-batches, so the outage falls in the middle of the stream.
        "SANAD_INGEST_BATCH_MAX": "50",
        "SANAD_LOG_PLAIN": "1",
    }
    worker = ingest_worker(env)
    client: AsyncMongoClient = AsyncMongoClient(
        stoppable_database.url, serverSelectionTimeoutMS=20_000
    )
    db = client[database_name]
    try:
        publishing = asyncio.create_task(publish(amqp_url, topology.transactions_exchange, events))

        async def stored_some() -> bool:
            return await db.transactions.estimated_document_count() >= 300

        await eventually(stored_some, within_s=30, every_s=0.02)
        before_outage = await db.transactions.estimated_document_count()
        retried_before = await asyncio.to_thread(_retried, env["SANAD_INGEST_METRICS_PORT"])
        stoppable_database.stop()
        await publishing

        async def retrying() -> bool:
            retried = await asyncio.to_thread(_retried, env["SANAD_INGEST_METRICS_PORT"])
            return retried > retried_before

        # Down until the worker has met the outage: a micro-batch failed and waits to be retried.
        await eventually(retrying, within_s=60, every_s=0.2)
        stoppable_database.start()

        async def all_done() -> bool:
            # Every delivery handled and acked, redeliveries of what was stored before too.
            stored = await db.transactions.estimated_document_count()
            return stored >= COUNT and await settled(topology.ingest_queue)

        await eventually(all_done, within_s=60, every_s=0.5)
        assert await db.transactions.count_documents({}) == COUNT
        rollups = await db.rollups.find({"center_id": center}).to_list()
        assert sum(r["submitted"] for r in rollups) == COUNT
        assert sum(r["fees_baisa"] for r in rollups) == COUNT * 5000
        assert await queue_depth(amqp_url, topology.dead_queue(topology.ingest_queue)) == 0
        assert await queue_depth(amqp_url, topology.retry_queue(topology.ingest_queue)) == 0
        assert worker.poll() is None, "the worker must ride out the outage, not exit"
        assert before_outage < COUNT, "the outage must fall in the middle of the stream"
        assert _retried(env["SANAD_INGEST_METRICS_PORT"]) > 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
