"""Submission against the real broker and database: idempotency under concurrency, streaming."""

import asyncio
import signal
from collections.abc import AsyncIterator

import aio_pika
import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE
from sanad.rpc.server import BACKSTOP, SMALL_REQUEST_BYTES
from sanad.rpc.status import field_violations
from sanad.security.audit import COLLECTION
from sanad.v1 import events_pb2, intake_pb2, intake_pb2_grpc
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request

pytestmark = pytest.mark.integration


async def test_fifty_concurrent_retries_on_separate_channels_make_one_transaction(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    assert stack.intake_app.server is not None
    target = f"127.0.0.1:{stack.intake_app.server.port}"
    channels = [grpc.aio.insecure_channel(target) for _ in range(50)]
    worker = stack.start_worker()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        replies = await asyncio.gather(
            *(
                intake_pb2_grpc.IntakeServiceStub(channel).SubmitTransaction(
                    submit_request(center_id, service, "one-request"), timeout=15
                )
                for channel in channels
            )
        )
        ids = {reply.transaction_id for reply in replies}
        assert len(ids) == 1
        assert len({reply.submit_time.ToNanoseconds() for reply in replies}) == 1

        async def stored() -> bool:
            return await db.transactions.count_documents({}) >= 1

        await eventually(stored, within_s=30)
        await eventually(lambda: _drained(stack), within_s=30)
        assert await db.transactions.distinct("_id") == list(ids)
        doc = await db.transactions.find_one({})
        assert doc is not None
        assert (doc["fee_baisa"], doc["request_id"]) == (5000, "one-request")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await asyncio.gather(*(channel.close() for channel in channels))
        await client.close()


async def _drained(stack: Stack) -> bool:
    return await stack.queue_depth(f"{stack.prefix}.ingest") == 0


async def _queued_transaction_ids(stack: Stack) -> list[str]:
    """The transaction ids of every submission in the ingest queue, read and left there."""
    ids: list[str] = []
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{stack.prefix}.ingest", ensure=False)
        while (message := await queue.get(fail=False, no_ack=False)) is not None:
            if message.type == SUBMITTED_PACK_TYPE:
                pack = events_pb2.TransactionsSubmitted.FromString(message.body)
                ids += [item.transaction_id for item in pack.items]
            else:
                assert message.type == SUBMITTED_TYPE
                ids.append(events_pb2.TransactionSubmitted.FromString(message.body).transaction_id)
    return ids  # unacknowledged: closing the channel returns every message to the queue


async def test_a_stream_of_a_thousand_items_answers_each_in_order(stack: Stack) -> None:
    center_id, service = await open_centre_with_service(stack)
    bad_fee = set(range(7, 1000, 40))  # 25 items
    bad_civil = set(range(23, 1000, 40))  # 25 items: 5% invalid in all

    def item(n: int) -> intake_pb2.SubmitTransactionsRequest:
        changes: dict[str, object] = {}
        if n in bad_fee:
            changes["fee_baisa"] = 4999
        if n in bad_civil:
            changes["beneficiary_civil_number"] = "12ab"
        return intake_pb2.SubmitTransactionsRequest(
            transaction=submit_request(center_id, service, f"s-{n}", **changes)
        )

    async def items() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        for n in range(1000):
            yield item(n)

    answers = [a async for a in stack.intake.SubmitTransactions(items(), timeout=60)]
    assert [a.index for a in answers] == list(range(1000))
    assert [a.request_id for a in answers] == [f"s-{n}" for n in range(1000)]
    for answer in answers:
        if answer.index in bad_fee | bad_civil:
            assert answer.error_code == "INVALID_ARGUMENT"
            assert answer.transaction_id == ""
            expected = "fee_baisa" if answer.index in bad_fee else "beneficiary_civil_number"
            assert [v.field for v in answer.violations] == [expected]
        else:
            assert answer.error_code == ""
            assert len(answer.transaction_id) == 26
    accepted = [a.transaction_id for a in answers if a.transaction_id]
    assert len(set(accepted)) == len(accepted) == 950
    # Every accepted item waits in the queue once, alone or packed with others.
    assert sorted(await _queued_transaction_ids(stack)) == sorted(accepted)
    # The same stream again is idempotent: the same ids, item by item.
    again = [a async for a in stack.intake.SubmitTransactions(items(), timeout=60)]
    assert [a.transaction_id for a in again] == [a.transaction_id for a in answers]


async def test_an_item_with_an_overlong_request_id_is_refused_alone_and_not_echoed(
    stack: Stack,
) -> None:
    # A request id just under the 4 MiB a message may be (before intake refused any over 64 KiB):
    # echoed in its answer, the answer was too large to send, and the whole stream ended
    # RESOURCE_EXHAUSTED with the next item stored but never answered.
    center_id, service = await open_centre_with_service(stack)
    overlong = "R" * (SMALL_REQUEST_BYTES - 300)

    async def items() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        for request_id in (overlong, "after-the-overlong-one"):
            request = submit_request(center_id, service, request_id)
            yield intake_pb2.SubmitTransactionsRequest(transaction=request)

    answers = [a async for a in stack.intake.SubmitTransactions(items(), timeout=30)]
    refused, accepted = answers
    assert (refused.index, refused.request_id, refused.error_code) == (0, "", "INVALID_ARGUMENT")
    assert [v.field for v in refused.violations] == ["request_id"]
    assert (accepted.index, accepted.request_id, accepted.error_code) == (
        1,
        "after-the-overlong-one",
        "",
    )
    assert len(accepted.transaction_id) == 26


async def test_a_request_over_intakes_limit_is_refused_counted_and_audited(
    stack: Stack, mongo_url: str
) -> None:
    # Items of a few megabytes each, their answers unread, had intake hold 4 GB for ten streams.
    center_id, service = await open_centre_with_service(stack)
    oversized = submit_request(center_id, service, "oversized")
    oversized.center_id = "C" * SMALL_REQUEST_BYTES

    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stack.intake.SubmitTransaction(
            oversized, metadata=(("x-request-id", "req-oversized"),), timeout=10
        )
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(unary.value)
    assert field == "request"
    assert description.endswith(f"bytes; this service takes at most {SMALL_REQUEST_BYTES:,}")

    call = stack.intake.SubmitTransactions(
        metadata=(("x-request-id", "req-oversized-item"),), timeout=10
    )
    before = submit_request(center_id, service, "before-the-oversized-one")
    await call.write(intake_pb2.SubmitTransactionsRequest(transaction=before))
    answered = await call.read()
    assert (answered.index, answered.error_code) == (0, "")
    await call.write(intake_pb2.SubmitTransactionsRequest(transaction=oversized))
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT

    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    trail = client[stack.env["SANAD_MONGO_DATABASE"]][COLLECTION]
    try:
        for request_id in ("req-oversized", "req-oversized-item"):

            async def audited(request_id: str = request_id) -> bool:
                found = await trail.find_one({"request_id": request_id})
                return found is not None and found["outcome"] == "INVALID_ARGUMENT"

            await eventually(audited, within_s=10)
    finally:
        await client.close()


async def test_a_request_far_over_intakes_limit_is_dropped_by_grpc_unread(stack: Stack) -> None:
    center_id, service = await open_centre_with_service(stack)
    far = submit_request(center_id, service, "far-oversized")
    far.center_id = "C" * (BACKSTOP * SMALL_REQUEST_BYTES)

    with pytest.raises(grpc.aio.AioRpcError) as dropped:
        await stack.intake.SubmitTransaction(far, timeout=10)
    assert dropped.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"vs. {BACKSTOP * SMALL_REQUEST_BYTES}" in (dropped.value.details() or "")
