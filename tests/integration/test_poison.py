"""Poison on the ingest queue is dead-lettered with its reason while good messages keep flowing."""

import signal

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import REASON_HEADER, SUBMITTED, Topology
from sanad.v1 import intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service

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
