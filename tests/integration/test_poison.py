"""Poison on the ingest and batch queues is dead-lettered with reasons; good messages flow."""

import signal
import time

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.topology import BATCH, RATED, REASON_HEADER, STATUS_CHANGED, SUBMITTED, Topology
from sanad.cli.batch import send
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service
from tests.integration.workers_support import (
    dead_letters,
    delete_retry_queues,
    start_batch_worker,
)

pytestmark = pytest.mark.integration


async def test_poison_is_dead_lettered_with_reasons_and_good_messages_are_stored(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.transactions_exchange)
        for body, kind in (
            (b"\x00\xffnot protobuf", "sanad.v1.TransactionSubmitted"),
            (b"{}", "sanad.v1.Unknown"),
        ):
            await exchange.publish(aio_pika.Message(body, type=kind), routing_key=SUBMITTED)
    good = await stack.intake.SubmitTransaction(
        intake_pb2.SubmitTransactionRequest(
            center_id=center_id,
            service_code=service,
            channel=COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number="55554444",
        ),
        timeout=10,
    )
    worker = stack.start_worker()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:

        async def stored() -> bool:
            return await db.transactions.find_one({"_id": good.transaction_id}) is not None

        await eventually(stored, within_s=30)
        reasons = await _dead_letter_reasons(stack, topology, expected=2)
        assert sorted(reasons) == ["undecodable", "unknown-type"]
        assert await stack.queue_depth(topology.ingest_queue) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()


async def _dead_letter_reasons(stack: Stack, topology: Topology, expected: int) -> list[str]:
    reasons: list[str] = []
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.dead_queue(topology.ingest_queue))

        async def drained() -> bool:
            message = await queue.get(fail=False)
            if message is not None:
                reasons.append(str((message.headers or {}).get(REASON_HEADER)))
                await message.ack()
            return len(reasons) >= expected

        await eventually(drained, within_s=15)
    return reasons


STATUS_TYPE = events_pb2.TransactionStatusChanged.DESCRIPTOR.full_name
RATED_TYPE = events_pb2.TransactionRated.DESCRIPTOR.full_name

GARBAGE = b"\x00\xffnot protobuf"


async def _publish(stack: Stack, exchange_name: str, poison: list[tuple[str, bytes, str]]) -> None:
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name)
        for key, body, kind in poison:
            await exchange.publish(aio_pika.Message(body, type=kind), routing_key=key)


async def test_poison_status_changes_and_ratings_are_dead_lettered_while_good_ones_flow(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    await _publish(
        stack,
        topology.transactions_exchange,
        [
            (STATUS_CHANGED, GARBAGE, STATUS_TYPE),
            (STATUS_CHANGED, b"{}", "sanad.v1.Nope"),
            (
                STATUS_CHANGED,
                events_pb2.TransactionStatusChanged(transaction_id="T1").SerializeToString(),
                STATUS_TYPE,
            ),
            (RATED, GARBAGE, RATED_TYPE),
            (RATED, b"{}", "sanad.v1.Nope"),
            (RATED, events_pb2.TransactionRated(rating=3).SerializeToString(), RATED_TYPE),
        ],
    )
    good = await stack.intake.SubmitTransaction(
        intake_pb2.SubmitTransactionRequest(
            center_id=center_id,
            service_code=service,
            channel=COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number="55554444",
        ),
        timeout=10,
    )
    worker = stack.start_worker()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        reasons = await dead_letters(stack, topology.ingest_queue, expected=6)
        assert sorted(reasons) == ["invalid"] * 2 + ["undecodable"] * 2 + ["unknown-type"] * 2

        async def stored() -> bool:
            return await db.transactions.find_one({"_id": good.transaction_id}) is not None

        await eventually(stored, within_s=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
        await delete_retry_queues(stack)


async def test_poison_batches_are_dead_lettered_with_reasons_and_good_batches_are_answered(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    worker = start_batch_worker(stack)
    try:
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            await topology.declare(await connection.channel())  # idempotent, as the worker does
        await _publish(
            stack,
            topology.batch_exchange,
            [
                (BATCH, GARBAGE, SUBMISSION_TYPE),
                (BATCH, b"{}", "sanad.v1.Nope"),
                (
                    BATCH,
                    events_pb2.BatchSubmission(center_id=center_id).SerializeToString(),
                    SUBMISSION_TYPE,
                ),
            ],
        )
        good = events_pb2.BatchSubmission(
            batch_id=f"good-{time.time_ns()}",
            center_id=center_id,
            items=[
                intake_pb2.SubmitTransactionRequest(
                    request_id="g-1",
                    service_code=service,
                    channel=COUNTER,
                    fee_baisa=5000,
                    beneficiary_civil_number="55554444",
                )
            ],
        )
        [answer] = await send(stack.amqp_url, stack.prefix, [good], wait_s=30)
        assert len(answer.accepted) == 1
        reasons = await dead_letters(stack, topology.batch_queue, expected=3)
        assert sorted(reasons) == ["invalid", "undecodable", "unknown-type"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)
