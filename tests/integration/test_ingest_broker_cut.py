"""The broker connection of a busy ingest worker cut mid-stream (DESIGN 5.5): the worker reports
it, reconnects by itself, and every submission ends up stored and counted exactly once, none
dead-lettered.

The worker (`python -m workers.ingest`) reaches RabbitMQ through a proxy that drops every
connection and refuses new ones until healed; the test publishes straight to the broker.
"""

import asyncio
import signal
import uuid

import pytest
from grpc_health.v1 import health_pb2
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from tests.integration.broker_support import BrokerProxy, proxy_fixture  # noqa: F401
from tests.integration.conftest import Stack, eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, settled
from tests.integration.workers_support import (
    delete_retry_queues,
    deliveries,
    has_consumer,
    health_becomes,
    publish,
    queue_depth,
    start_ingest_worker,
    submitted,
)

pytestmark = [pytest.mark.integration, needs_rabbitmqctl, pytest.mark.timeout(400)]

COUNT = 3000
# Generous bounds that turn a hang into a failure; no assertion is about how long anything took.
WITHIN_S = 120.0


async def test_a_busy_worker_whose_broker_connection_is_cut_stores_everything_exactly_once(
    stack: Stack, proxy: BrokerProxy, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    center = f"C-{uuid.uuid4().hex[:8]}"
    ids = [f"B{n:07d}" for n in range(COUNT)]
    events = [
        (SUBMITTED, submitted(tid, center, "ROP-VISA").SerializeToString(), SUBMITTED_TYPE)
        for tid in ids
    ]
    health_port = stack.env["SANAD_INGEST_HEALTH_PORT"]
    # Small micro-batches, so the cut falls in the middle of the stream.
    worker = start_ingest_worker(stack, SANAD_AMQP_URL=proxy.url, SANAD_INGEST_BATCH_MAX="50")
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]

    async def stored_at_least(count: int) -> bool:
        return await db.transactions.estimated_document_count() >= count

    try:
        await eventually(lambda: has_consumer(stack.amqp_url, topology.ingest_queue), WITHIN_S)
        await health_becomes(health_port, health_pb2.HealthCheckResponse.SERVING, WITHIN_S)
        await publish(stack.amqp_url, topology.transactions_exchange, events)
        await eventually(lambda: stored_at_least(300), within_s=WITHIN_S, every_s=0.02)

        await proxy.cut()
        at_cut = await db.transactions.count_documents({})
        # Partway, or the cut found nothing in flight and the test proves nothing.
        assert at_cut < COUNT, f"the cut came after all {COUNT} were stored"

        async def no_consumer() -> bool:
            return not await has_consumer(stack.amqp_url, topology.ingest_queue)

        # The broker saw the connection go (what it had delivered is ready again), and the
        # worker reports the lost broker.
        await eventually(no_consumer, within_s=WITHIN_S)
        await health_becomes(health_port, health_pb2.HealthCheckResponse.NOT_SERVING, WITHIN_S)
        await proxy.heal()

        await eventually(lambda: stored_at_least(COUNT), within_s=WITHIN_S, every_s=0.2)
        # Every delivery handled and acked, redeliveries of what was stored before the cut too.
        await eventually(lambda: settled(topology.ingest_queue), within_s=WITHIN_S, every_s=0.5)
        assert await db.transactions.count_documents({}) == COUNT
        assert sorted(await db.transactions.distinct("_id")) == ids
        rollups = await db.rollups.find({"center_id": center}).to_list()
        assert sum(r["submitted"] for r in rollups) == COUNT
        assert sum(r["fees_baisa"] for r in rollups) == COUNT * 5000
        assert await queue_depth(stack.amqp_url, topology.dead_queue(topology.ingest_queue)) == 0
        assert await queue_depth(stack.amqp_url, topology.retry_queue(topology.ingest_queue)) == 0
        # Its health follows at its next check: SERVING again, with the broker back.
        await health_becomes(health_port, health_pb2.HealthCheckResponse.SERVING, WITHIN_S)
        # What the cut left unacked came again: the redelivery path was exercised.
        consumed = await asyncio.to_thread(deliveries, stack.env["SANAD_INGEST_METRICS_PORT"])
        assert consumed > COUNT, consumed
        assert worker.poll() is None, "the worker must ride out the cut, not exit"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)  # the proxy shares this event loop
        await client.close()
        await delete_retry_queues(stack)
    assert code == 0


async def test_a_worker_whose_broker_connection_goes_silent_sees_it_and_comes_back(
    stack: Stack, proxy: BrokerProxy, mongo_url: str
) -> None:
    # A partition: the connection stays open and no byte passes either way, so no close ever
    # arrives. Only the heartbeat can tell: with 1 s, about 6 s; with RabbitMQ's 60 s (no
    # heartbeat asked for) 183-213 s, health SERVING all the while.
    topology = Topology(stack.prefix)
    health_port = stack.env["SANAD_INGEST_HEALTH_PORT"]
    worker = start_ingest_worker(stack, SANAD_AMQP_URL=proxy.url, SANAD_AMQP_HEARTBEAT_S="1")
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]

    try:
        await eventually(lambda: has_consumer(stack.amqp_url, topology.ingest_queue), WITHIN_S)
        await health_becomes(health_port, health_pb2.HealthCheckResponse.SERVING, WITHIN_S)
        proxy.freeze()
        await health_becomes(health_port, health_pb2.HealthCheckResponse.NOT_SERVING, 60)
        proxy.thaw()
        tid = f"S{uuid.uuid4().hex[:12]}"
        event = submitted(tid, f"C-{uuid.uuid4().hex[:8]}", "ROP-VISA").SerializeToString()
        await publish(
            stack.amqp_url, topology.transactions_exchange, [(SUBMITTED, event, SUBMITTED_TYPE)]
        )

        async def stored() -> bool:
            return await db.transactions.count_documents({"_id": tid}) == 1

        await eventually(stored, within_s=WITHIN_S, every_s=0.2)
        await health_becomes(health_port, health_pb2.HealthCheckResponse.SERVING, WITHIN_S)
        assert worker.poll() is None, "the worker must ride out the silence, not exit"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 60)
        await client.close()
        await delete_retry_queues(stack)
    assert code == 0
