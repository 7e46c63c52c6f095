"""A status change intake accepted while the broker refused its message reaches the queue
once the broker takes it, with no further call on the transaction (services/intake/resends.py)."""

from typing import Any

import aio_pika
import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import STATUS_CHANGED, Topology
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.integration.conftest import Stack, eventually
from tests.integration.test_intake_tracking import T0, document, next_message

pytestmark = pytest.mark.integration
S = common_pb2.TransactionStatus


async def completed_while_unroutable(
    stack: Stack, channel: aio_pika.abc.AbstractChannel, transaction_id: str
) -> tuple[aio_pika.abc.AbstractExchange, aio_pika.abc.AbstractQueue]:
    """Unbind status changes from the ingest queue, then complete the transaction: the broker
    returns the change, intake accepts it unsent and answers UNAVAILABLE. The exchange and the
    queue, to bind them again."""
    topology = Topology(stack.prefix)
    exchange = await channel.get_exchange(topology.transactions_exchange)
    queue = await channel.get_queue(topology.ingest_queue)
    await queue.unbind(exchange, STATUS_CHANGED)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.intake.UpdateTransactionStatus(
            intake_pb2.UpdateTransactionStatusRequest(
                id=transaction_id, status=S.TRANSACTION_STATUS_COMPLETED, note="done"
            ),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    return exchange, queue


async def test_a_change_the_broker_refused_is_sent_once_it_routes_again(
    stack: Stack, mongo_url: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    doc = document("C1", T0, "IN_PROGRESS")
    await db["transactions"].insert_one(doc)
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await connection.channel()
        # No queue takes a status change now: the broker returns it, intake answers UNAVAILABLE.
        exchange, queue = await completed_while_unroutable(stack, channel, doc["_id"])
        await queue.bind(exchange, STATUS_CHANGED)

        message = await next_message(stack, within_s=15)
        event = events_pb2.TransactionStatusChanged.FromString(message.body)
        assert (event.transaction_id, event.status, event.note) == (
            doc["_id"],
            S.TRANSACTION_STATUS_COMPLETED,
            "done",
        )

        async def noted() -> bool:
            record = await db["intake_requests"].find_one({"_id": f"status\x1f{doc['_id']}"})
            return record is not None and record["confirmed"] is True

        await eventually(noted, within_s=5)
    finally:
        await connection.close()
        await client.close()
