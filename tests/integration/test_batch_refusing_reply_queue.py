"""Against the real broker: a submitter's reply queue that refuses what is published to it
(declared, as its permissions allow, with `x-max-length` 0 and `x-overflow: reject-publish`)
costs that submitter its answer, never the batch queue: the batch is stored and its answer
kept, and the batches behind it are answered."""

import asyncio
import signal
import uuid

import aio_pika
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.topology import BATCH, CONTENT_TYPE, Topology
from sanad.cli.batch_send import send
from sanad.settings import amqp_user
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service
from tests.integration.workers_support import queue_depth, serving_batch_worker

pytestmark = pytest.mark.integration


def one_item(center_id: str, service: str, request_id: str) -> events_pb2.BatchSubmission:
    return events_pb2.BatchSubmission(
        batch_id=f"{request_id}-{uuid.uuid4().hex}",
        center_id=center_id,
        items=[
            intake_pb2.SubmitTransactionRequest(
                request_id=request_id,
                service_code=service,
                channel=COUNTER,
                fee_baisa=5000,
                beneficiary_civil_number="90817263",
            )
        ],
    )


async def test_a_reply_queue_that_refuses_its_answer_holds_back_no_other_batch(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    refused = one_item(center_id, service, "refusing")
    worker = await serving_batch_worker(stack)
    connection = await aio_pika.connect(stack.amqp_url)
    try:
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            replies = await channel.declare_queue(
                "",
                exclusive=True,
                arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
            )
            assert replies.name.startswith("amq.gen-")
            exchange = await channel.get_exchange(Topology(stack.prefix).batch_exchange)
            await exchange.publish(
                aio_pika.Message(
                    refused.SerializeToString(),
                    content_type=CONTENT_TYPE,
                    type=SUBMISSION_TYPE,
                    message_id=refused.batch_id,
                    correlation_id="c-1",
                    reply_to=replies.name,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    user_id=amqp_user(stack.amqp_url),
                ),
                routing_key=BATCH,
            )
            # Another submitter's batch, sent right behind it: before, the worker took the
            # refused answer for a broken connection, reconnected and was handed the first
            # batch again, over and over; this one waited (30 s, unanswered).
            behind = one_item(center_id, service, "behind")
            [answer] = await send(stack.amqp_url, stack.prefix, [behind], wait_s=30)
            assert len(answer.accepted) == 1

            async def both_stored() -> bool:
                return await db.transactions.count_documents({"center_id": center_id}) == 2

            await eventually(both_stored, within_s=15)
            batch_queue = Topology(stack.prefix).batch_queue
            assert await queue_depth(stack.amqp_url, batch_queue) == 0
            # The refused answer is kept: sent again with a reply queue that takes it, it comes.
            [again] = await send(stack.amqp_url, stack.prefix, [refused], wait_s=30)
            assert len(again.accepted) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
