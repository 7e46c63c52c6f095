"""The batch worker answers only server-named reply queues, never replays a batch id for other
content, refuses by field what it could not store, keeps the first answer it saved, and keeps a
refused batch's clear civil numbers in the dead-letter queue for a bounded time only."""

import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import aio_pika
import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.copies import EXPIRES_HEADER
from sanad.amqp.topology import BATCH, CONTENT_TYPE, REASON_HEADER, Topology
from sanad.amqp.verdicts import Dead
from sanad.cli.batch_send import send
from sanad.rpc.timestamps import to_timestamp
from sanad.security.audit import document_of
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service
from tests.integration.workers_support import (
    dead_letter_tap,
    dead_letters,
    delete_retry_queues,
    start_batch_worker,
)
from workers.batch import audit
from workers.batch.content import MAX_NOTE_LENGTH
from workers.batch.store import BatchStore
from workers.storage.submissions import SubmissionStore

pytestmark = pytest.mark.integration


def item(service: str, n: int, fee: int = 5000) -> intake_pb2.SubmitTransactionRequest:
    return intake_pb2.SubmitTransactionRequest(
        request_id=f"r-{n}",
        service_code=service,
        channel=COUNTER,
        fee_baisa=fee,
        beneficiary_civil_number=f"{60_000_000 + n}",
    )


async def test_a_batch_id_resent_with_other_content_is_refused_and_stores_nothing_more(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    batch_id = f"reuse-{uuid.uuid4().hex}"
    first = events_pb2.BatchSubmission(
        batch_id=batch_id, center_id=center_id, items=[item(service, n) for n in range(3)]
    )
    # The same rows split otherwise: rows 0-1 where rows 0-2 were.
    other = events_pb2.BatchSubmission(
        batch_id=batch_id, center_id=center_id, items=[item(service, n) for n in range(2)]
    )
    worker = start_batch_worker(stack)
    try:
        [answer] = await send(stack.amqp_url, stack.prefix, [first], wait_s=60)
        [refused] = await send(stack.amqp_url, stack.prefix, [other], wait_s=60)
        [again] = await send(stack.amqp_url, stack.prefix, [first], wait_s=60)
        reasons = await dead_letters(stack, Topology(stack.prefix).batch_queue, expected=1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)
    assert [a.index for a in answer.accepted] == [0, 1, 2]
    assert "already used for a batch with other content" in refused.refused_reason
    assert not refused.accepted
    assert reasons == ["batch-id-reused"]
    assert again == answer
    assert await db.transactions.count_documents({"center_id": center_id}) == 3


async def test_a_reply_to_naming_the_ingest_queue_gets_nothing_published_there(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    batch = events_pb2.BatchSubmission(
        batch_id=f"hijack-{uuid.uuid4().hex}", center_id=center_id, items=[item(service, 0)]
    )
    worker = start_batch_worker(stack)
    try:
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await topology.declare(channel)  # idempotent, as the worker does
            exchange = await channel.get_exchange(topology.batch_exchange)
            await exchange.publish(
                aio_pika.Message(
                    batch.SerializeToString(),
                    content_type=CONTENT_TYPE,
                    type=SUBMISSION_TYPE,
                    reply_to=topology.ingest_queue,
                    correlation_id="c-1",
                ),
                routing_key=BATCH,
            )
        reasons = await dead_letters(stack, topology.batch_queue, expected=1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)
    assert reasons == ["bad-reply-to"]
    assert await stack.queue_depth(topology.ingest_queue) == 0
    assert await db.batch_results.count_documents({}) == 0
    assert await db.transactions.count_documents({"center_id": center_id}) == 0


async def test_an_answered_refusal_is_dropped_from_the_dead_letter_queue_after_its_retention(
    stack: Stack,
) -> None:
    """Its body holds every item's clear civil number; the submitter was told why."""
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    batch = events_pb2.BatchSubmission(
        batch_id=f"expiring-{uuid.uuid4().hex}", center_id=center_id, items=[item(service, 0)]
    )
    async with dead_letter_tap(stack, topology.batch_queue) as copies:
        # guest is no centre's batch user: once auth is required its batches are not allowed.
        worker = start_batch_worker(
            stack, SANAD_AUTH_MODE="required", SANAD_BATCH_DEAD_LETTER_TTL_DAYS=str(1 / 86400)
        )
        try:
            [refused] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=60)
            dead_lettered = datetime.now(UTC)

            async def tapped() -> bool:
                return bool(copies)

            await eventually(tapped, within_s=20)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
            await delete_retry_queues(stack)
    assert refused.refused_reason == f"not allowed to submit for centre {center_id!r}"
    [letter] = copies
    headers = letter.headers or {}
    assert headers[REASON_HEADER] == "not-allowed"
    assert letter.expiration == 1.0
    ends = datetime.fromisoformat(str(headers[EXPIRES_HEADER]))
    assert dead_lettered - timedelta(seconds=5) < ends < dead_lettered + timedelta(seconds=2)
    dead_queue = topology.dead_queue(topology.batch_queue)

    async def dropped() -> bool:
        return await stack.queue_depth(dead_queue) == 0

    await eventually(dropped, within_s=10)


async def test_a_history_item_too_large_to_store_is_refused_by_field_and_its_batch_answered(
    stack: Stack, db: AsyncDatabase
) -> None:
    """An item bigger than a MongoDB document once failed its whole batch, dead-lettered
    without an answer. A migrated item at an older fee than today's is stored at that fee."""
    center_id, service = await open_centre_with_service(stack)
    submitted = datetime.now(UTC) - timedelta(days=400)

    def migrated(n: int, fee: int, note: str) -> events_pb2.HistoricalTransaction:
        done = intake_pb2.StatusChange(
            status=common_pb2.TRANSACTION_STATUS_COMPLETED,
            time=to_timestamp(submitted + timedelta(hours=5)),
            note=note,
        )
        return events_pb2.HistoricalTransaction(
            transaction=item(service, n, fee), submit_time=to_timestamp(submitted), history=[done]
        )

    batch = events_pb2.BatchSubmission(
        batch_id=f"huge-{time.time_ns()}",
        center_id=center_id,
        items=[item(service, 0)],
        history_items=[
            migrated(1, 4000, "done"),
            migrated(2, 5000, "x" * (17 * 1024 * 1024)),
        ],
    )
    # Over the default body limit (16 MiB, refused whole unread): an operator who raises it
    # still gets the item refused by field.
    worker = start_batch_worker(stack, SANAD_BATCH_MAX_BYTES=str(32 * 1024 * 1024))
    try:
        [answer] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=90)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)
    assert [a.index for a in answer.accepted] == [0, 1]
    assert [(r.index, [v.field for v in r.violations]) for r in answer.rejected] == [
        (2, ["history[0].note"])
    ]
    assert str(MAX_NOTE_LENGTH) in answer.rejected[0].violations[0].description
    old_fee = await db.transactions.find_one({"_id": answer.accepted[1].transaction_id})
    assert old_fee is not None
    assert old_fee["fee_baisa"] == 4000


async def test_the_first_saved_answer_is_kept_and_a_correction_replaces_only_what_it_read(
    stack: Stack, db: AsyncDatabase
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    now = datetime.now(UTC)

    first, fresh = await store.claim("b-1", "guest", "C1", now, "content-1")
    later, again = await store.claim("b-1", "guest", "C1", now + timedelta(seconds=5), "content-2")

    assert (fresh, again) == (True, False)
    assert later["fingerprint"] == "content-1"
    assert later["started_at"] == first["started_at"]
    key = first["_id"]
    assert await store.save_result(key, b"answer-1", 1, 1, {"_id": "e-1", "n": 1}) is None
    # A second attempt (a redelivery, a concurrent worker) neither saves nor audits again.
    assert await store.save_result(key, b"answer-2", 0, 2, {"_id": "e-2", "n": 2}) == b"answer-1"
    assert [e async for e in db.audit_log.find({"_id": {"$in": ["e-1", "e-2"]}})] == [
        {"_id": "e-1", "n": 1}
    ]
    assert not await store.replace_result(key, b"answer-2", b"answer-3", 2, 0)
    assert await store.replace_result(key, b"answer-1", b"answer-1b", 2, 0)
    assert await store.saved_result(key) == b"answer-1b"
    saved = await db.batch_results.find_one({"_id": key})
    assert saved is not None
    assert (saved["accepted"], saved["rejected"]) == (2, 0)


async def test_a_batch_answer_is_saved_only_with_its_audit_event(
    stack: Stack, db: AsyncDatabase
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id, event_id = f"audited-{uuid.uuid4().hex}", uuid.uuid4().hex
    record, _ = await store.claim(batch_id, "guest", "C1", datetime.now(UTC), "content")
    await db.audit_log.insert_one({"_id": event_id})  # the event cannot be written

    with pytest.raises(DuplicateKeyError):
        await store.save_result(record["_id"], b"answer", 1, 0, {"_id": event_id, "n": 1})

    saved = await db.batch_results.find_one({"batch_id": batch_id})
    assert saved is not None
    assert "result" not in saved  # the answer went with the event: the next attempt saves both


async def test_a_redelivered_refusal_is_audited_once(stack: Stack, db: AsyncDatabase) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"refused-{uuid.uuid4().hex}"

    def event(correlation_id: str) -> dict[str, object]:
        found = audit.refused(
            SimpleNamespace(user_id="batch-C9", correlation_id=correlation_id, message_id=None),  # type: ignore[arg-type]
            events_pb2.BatchSubmission(batch_id=batch_id, center_id="C1"),
            datetime.now(UTC),
            Dead("not-allowed", "not allowed"),
        )
        return document_of(found)

    await store.record_refusal(event("c-1"))
    await store.record_refusal(event("c-1"), redelivered=True)  # the same message again
    await store.record_refusal(event("c-2"), redelivered=True)  # another publish of the batch
    await store.record_refusal(event("c-1"))  # not a redelivery: a call of its own

    found = [
        e["target"]["correlation_id"] async for e in db.audit_log.find({"request_id": batch_id})
    ]
    assert sorted(found) == ["c-1", "c-1", "c-2"]
