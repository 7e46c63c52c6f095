"""Shutdown: a cancelled consumer ends the worker non-zero; SIGTERM finishes the micro-batch."""

import asyncio
import signal
import subprocess
import uuid

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from tests.integration.conftest import Stack, eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, ready_and_unacked
from tests.integration.workers_support import (
    delete_retry_queues,
    has_consumer,
    publish,
    start_ingest_worker,
    submitted,
)

pytestmark = pytest.mark.integration


async def _exit_code(worker: subprocess.Popen[bytes], within_s: float) -> int | None:
    try:
        return await asyncio.to_thread(worker.wait, within_s)
    except subprocess.TimeoutExpired:
        return None


async def test_a_worker_whose_queue_is_deleted_exits_non_zero_within_seconds(
    stack: Stack,
) -> None:
    topology = Topology(stack.prefix)
    worker = stack.start_worker()
    try:
        await eventually(lambda: has_consumer(stack.amqp_url, topology.ingest_queue), within_s=30)
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            await (await connection.channel()).queue_delete(topology.ingest_queue)
        # Without a consumer the worker would idle for ever: a generous bound turns that into
        # a failure.
        code = await _exit_code(worker, within_s=30)
        assert code is not None, "the worker must not idle without a consumer"
        assert code != 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)
        await delete_retry_queues(stack)


@needs_rabbitmqctl
async def test_sigterm_mid_micro_batch_finishes_and_acks_it_and_leaves_the_rest_queued(
    stack: Stack, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    center = f"C-{uuid.uuid4().hex[:8]}"
    events = [
        (SUBMITTED, submitted(f"S{n:06d}", center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for n in range(1000)
    ]
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        await topology.declare(await connection.channel())
    await publish(stack.amqp_url, topology.transactions_exchange, events)
    # One long micro-batch: 400 prefetched deliveries collected over a 20 s window.
    settings = {
        "SANAD_INGEST_PREFETCH": "400",
        "SANAD_INGEST_BATCH_MAX": "100000",
        "SANAD_INGEST_BATCH_WAIT_MS": "20000",
    }
    worker = start_ingest_worker(stack, **settings)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:

        async def prefetched() -> bool:
            return await ready_and_unacked(topology.ingest_queue) == (600, 400)

        # The broker has delivered the 400; the worker collects them into one micro-batch.
        await eventually(prefetched, within_s=30, every_s=0.2)
        assert await db.transactions.count_documents({}) == 0, "still collecting"
        worker.send_signal(signal.SIGTERM)
        assert await _exit_code(worker, within_s=60) == 0
        # The micro-batch is what had reached the worker of the 400 (all of them, unless some
        # were still on their way): stored and acked; every other message is back in the queue.
        in_batch = await db.transactions.count_documents({})
        assert 0 < in_batch <= 400
        assert await ready_and_unacked(topology.ingest_queue) == (1000 - in_batch, 0)
        worker = start_ingest_worker(stack)

        async def all_stored() -> bool:
            return await db.transactions.count_documents({}) == 1000

        await eventually(all_stored, within_s=30)
        rollups = await db.rollups.find({"center_id": center}).to_list()
        assert sum(r["submitted"] for r in rollups) == 1000
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
        await delete_retry_queues(stack)
