"""A worker takes no message before it can store it: restarted while MongoDB is away (a crash
loop, a rolling restart during an outage), it leaves the queue as it was, so no restart counts
toward the messages' delivery limit, past which the broker would set good messages aside."""

import asyncio
import signal
import uuid
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.devstack import mongo_server
from sanad.records import SUBMITTED_TYPE
from tests.integration.conftest import StoppableDatabase, eventually, worker_env
from tests.integration.workers_support import (
    has_consumer,
    ingest_worker,
    publish,
    queue_depth,
    submitted,
)

pytestmark = pytest.mark.integration

COUNT = 5
WAITING = "not consuming until MongoDB answers"


async def test_an_ingest_worker_started_while_mongodb_is_away_takes_nothing_until_it_answers(
    tmp_path: Path, topology: Topology, amqp_url: str, database_name: str
) -> None:
    database = StoppableDatabase(tmp_path)  # not started yet: nothing answers on its port
    env = worker_env(
        database.url,
        database_name,
        amqp_url,
        topology.prefix,
        SANAD_MONGO_TIMEOUT_MS="300",
        SANAD_INGEST_HEALTH_PORT=str(mongo_server.free_port()),
        SANAD_INGEST_METRICS_PORT=str(mongo_server.free_port()),
    )
    center = f"C-{uuid.uuid4().hex[:8]}"
    messages = [submitted(f"W{n:07d}", center, "ROP-VISA") for n in range(COUNT)]
    await publish(
        amqp_url,
        topology.transactions_exchange,
        [(SUBMITTED, m.SerializeToString(), SUBMITTED_TYPE) for m in messages],
    )
    queue = topology.ingest_queue
    worker = None
    try:
        # Workers in turn, each stopped once it waits for MongoDB, as a rolling restart during
        # an outage would: every message stays ready, none was delivered. The last one waits on.
        for attempt in range(3):
            log = tmp_path / f"worker-{attempt}.log"
            worker = ingest_worker(env, log)

            async def waiting(log: Path = log) -> bool:
                return WAITING in await asyncio.to_thread(log.read_text)

            await eventually(waiting, within_s=30, every_s=0.1)
            assert not await has_consumer(amqp_url, queue)
            assert await queue_depth(amqp_url, queue) == COUNT
            if attempt < 2:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0

        database.start()
        client: AsyncMongoClient = AsyncMongoClient(database.url)
        try:
            stored = client[database_name].transactions

            async def all_stored() -> bool:
                return await stored.count_documents({"center_id": center}) == COUNT

            await eventually(all_stored, within_s=30, every_s=0.1)
        finally:
            await client.close()
        assert await queue_depth(amqp_url, topology.dead_queue(queue)) == 0
        assert "MongoDB answers; consuming" in await asyncio.to_thread(log.read_text)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        database.stop()
