"""Status changes and ratings through the real queue: in order, once, late ones retried."""

import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.copies import USER_ID_HEADER
from sanad.amqp.topology import (
    RATED,
    REASON_HEADER,
    RETRIES_HEADER,
    STATUS_CHANGED,
    SUBMITTED,
    Topology,
)
from sanad.records import SUBMITTED_TYPE
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2
from tests.integration.conftest import Stack, eventually
from tests.integration.workers_support import (
    RATED_TYPE,
    STATUS_CHANGED_TYPE,
    dead_letter_messages,
    dead_letters,
    delete_retry_queues,
    publish,
    start_ingest_worker,
    submitted,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(stack: Stack, mongo_url: str) -> AsyncIterator[object]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[stack.env["SANAD_MONGO_DATABASE"]]
    await client.close()
    await delete_retry_queues(stack)


def status(tx: str, change_id: str, value: int, at: datetime) -> tuple[str, bytes, str]:
    event = events_pb2.TransactionStatusChanged(
        transaction_id=tx, change_id=change_id, status=value, time=to_timestamp(at), actor="ROP"
    )
    return (STATUS_CHANGED, event.SerializeToString(), STATUS_CHANGED_TYPE)


def rating(tx: str, value: int, at: datetime) -> tuple[str, bytes, str]:
    event = events_pb2.TransactionRated(transaction_id=tx, rating=value, time=to_timestamp(at))
    return (RATED, event.SerializeToString(), RATED_TYPE)


async def test_changes_apply_once_and_redeliveries_change_no_counter(stack: Stack, db) -> None:  # type: ignore[no-untyped-def]
    topology = Topology(stack.prefix)
    tx, early = uuid.uuid4().hex, uuid.uuid4().hex
    center, service = f"C-{tx[:6]}", "ROP-VISA"
    base = datetime.now(UTC)
    events = [
        # A change for a transaction not stored yet: parked on the retry queue, applied later.
        status(early, "e1", common_pb2.TRANSACTION_STATUS_IN_PROGRESS, base + timedelta(hours=1)),
        # Submitted at `base`: completed two hours later to the millisecond.
        (SUBMITTED, submitted(tx, center, service, base).SerializeToString(), SUBMITTED_TYPE),
        status(tx, "c1", common_pb2.TRANSACTION_STATUS_IN_PROGRESS, base + timedelta(hours=1)),
        status(tx, "c2", common_pb2.TRANSACTION_STATUS_COMPLETED, base + timedelta(hours=2)),
        status(tx, "c2", common_pb2.TRANSACTION_STATUS_COMPLETED, base + timedelta(hours=2)),
        rating(tx, 4, base + timedelta(hours=3)),
        rating(tx, 4, base + timedelta(hours=3)),
        status(tx, "c3", common_pb2.TRANSACTION_STATUS_IN_PROGRESS, base + timedelta(hours=4)),
    ]
    await publish(stack.amqp_url, topology.transactions_exchange, events)
    worker = start_ingest_worker(stack, SANAD_INGEST_RETRY_DELAY_MS="300")
    try:
        reasons = await dead_letters(stack, topology.ingest_queue, expected=1)
        assert reasons == ["illegal-status-change"]
        await publish(
            stack.amqp_url,
            topology.transactions_exchange,
            [(SUBMITTED, submitted(early, center, service).SerializeToString(), SUBMITTED_TYPE)],
        )

        async def early_applied() -> bool:
            doc = await db.transactions.find_one({"_id": early})
            return doc is not None and doc["status"] == "IN_PROGRESS"

        await eventually(early_applied, within_s=20)
        doc = await db.transactions.find_one({"_id": tx})
        assert doc["status"] == "COMPLETED"
        assert doc["rating"] == 4
        assert doc["applied_changes"] == ["c1", "c2", doc["applied_changes"][2]]
        assert doc["sla_elapsed_seconds"] >= 7200
        rollups = await db.rollups.find({"center_id": center}).to_list()
        total = {
            k: sum(r.get(k, 0) for r in rollups)
            for k in ("submitted", "completed", "ratings", "rating_sum", "completed_within_sla")
        }
        assert total == {
            "submitted": 2,
            "completed": 1,
            "ratings": 1,
            "rating_sum": 4,
            "completed_within_sla": 1,
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


async def test_a_change_for_a_transaction_that_never_arrives_is_dead_lettered_naming_its_sender(
    stack: Stack, db
) -> None:  # type: ignore[no-untyped-def]
    # Sent with the user_id the broker validates and a header naming someone else: the worker
    # parks it twice on the retry queue, from which each copy comes back without user_id, and
    # the dead letter still names the validated user.
    topology = Topology(stack.prefix)
    sender = urlsplit(stack.amqp_url).username
    key, body, kind = status(
        "missing", "m1", common_pb2.TRANSACTION_STATUS_IN_PROGRESS, datetime.now(UTC)
    )
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        exchange = await (await connection.channel()).get_exchange(topology.transactions_exchange)
        change = aio_pika.Message(
            body, type=kind, user_id=sender, headers={USER_ID_HEADER: "someone-else"}
        )
        await exchange.publish(change, routing_key=key)
    worker = start_ingest_worker(
        stack, SANAD_INGEST_RETRY_DELAY_MS="100", SANAD_INGEST_MAX_RETRIES="2"
    )
    try:
        (letter,) = await dead_letter_messages(stack, topology.ingest_queue, expected=1)
        headers = letter.headers or {}
        assert headers[REASON_HEADER] == "unknown-transaction"
        assert headers[RETRIES_HEADER] == 2
        assert headers[USER_ID_HEADER] == sender
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
