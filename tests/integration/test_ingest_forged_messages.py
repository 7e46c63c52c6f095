"""On the real broker: the ingest worker stores only what a user of SANAD_INGEST_PUBLISHERS
published (the stack names intake's user, as make run and the deployments do). A well-formed
submission that names no user_id, or whose user_id is not listed, is dead-lettered not-allowed
and nothing of it is stored; intake's own submissions, published with its user_id, are."""

import signal
import uuid
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from tests.integration.conftest import (
    Stack,
    eventually,
    open_centre_with_service,
    submit_request,
)
from tests.integration.workers_support import dead_letter_messages, submitted

pytestmark = pytest.mark.integration


async def test_a_submission_nobody_listed_published_is_not_allowed_and_intakes_is_stored(
    stack: Stack, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    center_id, service = await open_centre_with_service(stack)
    forged = uuid.uuid4().hex
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:  # a user allowed to write to the exchange, but not intake
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        body = submitted(forged, center_id, service).SerializeToString()
        await exchange.publish(aio_pika.Message(body, type=SUBMITTED_TYPE), routing_key=SUBMITTED)
    good = await stack.intake.SubmitTransaction(
        submit_request(center_id, service, beneficiary_civil_number="55552222"), timeout=10
    )
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    worker = stack.start_worker()
    try:

        async def stored() -> bool:
            return await db.transactions.find_one({"_id": good.transaction_id}) is not None

        await eventually(stored, within_s=30)
        (letter,) = await dead_letter_messages(stack, topology.ingest_queue, expected=1)
        headers = letter.headers or {}
        assert headers.get("x-sanad-reason") == "not-allowed"
        assert "set no user_id" in str(headers.get("x-sanad-detail"))
        assert await db.transactions.find_one({"_id": forged}) is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
