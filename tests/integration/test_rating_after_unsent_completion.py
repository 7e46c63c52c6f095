"""A rating of a transaction whose completion intake accepted but could not send reaches the
worker after that completion, and is stored, however long the completion took to be sent."""

import asyncio
from typing import Any

import aio_pika
import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import STATUS_CHANGED, Topology
from sanad.v1 import common_pb2, intake_pb2
from tests.integration.conftest import Stack, eventually
from tests.integration.test_intake_tracking import T0, document
from tests.integration.test_intake_unsent_changes import completed_while_unroutable
from tests.integration.workers_support import (
    delete_retry_queues,
    has_consumer,
    start_ingest_worker,
)

pytestmark = pytest.mark.integration
S = common_pb2.TransactionStatus
# A worker that gives up on a change within a second, where the default gives it 3 minutes:
# what a completion held back longer than that budget met.
SHORT_BUDGET = {
    "SANAD_INGEST_RETRY_FIRST_DELAY_MS": "50",
    "SANAD_INGEST_RETRY_DELAY_MS": "100",
    "SANAD_INGEST_MAX_RETRIES": "5",
}
# How long status changes stay unroutable: well past that budget.
OUTAGE_S = 3.0


async def test_a_rating_is_not_dead_lettered_while_its_completion_is_unsent(
    stack: Stack, mongo_url: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    doc = document("C1", T0, "IN_PROGRESS", governorate_code="DA", wilayat_code="DA-NIZ")
    await db["transactions"].insert_one(doc)
    topology = Topology(stack.prefix)
    worker = start_ingest_worker(stack, **SHORT_BUDGET)
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        await eventually(lambda: has_consumer(stack.amqp_url, topology.ingest_queue), within_s=60)
        channel = await connection.channel()
        # No queue takes a status change now: the completion is accepted and left unsent.
        exchange, queue = await completed_while_unroutable(stack, channel, doc["_id"])
        rate = intake_pb2.RateTransactionRequest(id=doc["_id"], rating=5)
        try:
            await stack.intake.RateTransaction(rate, timeout=10)
            first_answer = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            first_answer, first_detail = error.code(), error.details() or ""
        await asyncio.sleep(OUTAGE_S)
        await queue.bind(exchange, STATUS_CHANGED)
        if first_answer != grpc.StatusCode.OK:
            await stack.intake.RateTransaction(rate, timeout=10)

        async def stored() -> bool:
            found = await db["transactions"].find_one({"_id": doc["_id"]})
            return found is not None and found["status"] == "COMPLETED"

        await eventually(stored, within_s=30)
        await eventually(lambda: _rated(db, doc["_id"]), within_s=10)
        dead = await channel.declare_queue(topology.dead_queue(topology.ingest_queue), passive=True)
        assert dead.declaration_result.message_count == 0
        # While the completion could not be sent, the rating was refused with why.
        assert first_answer == grpc.StatusCode.UNAVAILABLE
        assert "its completion is not sent yet" in first_detail
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        await connection.close()
        await client.close()
        await delete_retry_queues(stack)


async def _rated(db: Any, transaction_id: str) -> bool:
    found = await db["transactions"].find_one({"_id": transaction_id})
    return found is not None and found.get("rating") == 5
