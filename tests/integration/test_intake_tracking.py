"""Tracking RPCs against stored transactions prepared in MongoDB as the ingest worker writes them.

The worker's side of status changes is tested by the workers' own tests; here the
documents are written directly and the queue is read to see what intake sent.
"""

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

from sanad import paging
from sanad.domain.ids import new_id
from sanad.rpc.status import field_violations
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from services.intake.listing import PAGE_KIND, ListQuery
from tests.integration.conftest import Stack, eventually

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
S = common_pb2.TransactionStatus


def document(center_id: str, submitted: datetime, status: str = "RECORDED", **extra: Any) -> dict:
    steps = [("SUBMITTED", submitted), ("RECORDED", submitted)]
    if status != "RECORDED":
        steps.append((status, submitted + HOUR))
    doc = {
        "_id": new_id(int(submitted.timestamp() * 1000)),
        "request_id": "",
        "submitted_by": "test",
        "center_id": center_id,
        "service_code": "ROP-VISA",
        "agency_code": "ROP",
        "service_version": 1,
        "sla_hours": 48,
        "channel": "COUNTER",
        "fee_baisa": 5000,
        "beneficiary_hash": "h",
        "beneficiary_masked": "*****263",
        "submit_time": submitted,
        "status": status,
        "history": [{"status": s, "time": t, "actor": "test"} for s, t in steps],
        "applied_changes": [],
        "rating": 0,
    }
    doc.update(extra)
    return doc


@pytest.fixture
async def transactions(stack: Stack, mongo_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[stack.env["SANAD_MONGO_DATABASE"]]["transactions"]
    await client.close()


async def next_message(stack: Stack, within_s: float = 2.5) -> aio_pika.abc.AbstractIncomingMessage:
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{stack.prefix}.ingest")
        for _ in range(int(within_s / 0.05)):
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)
    raise AssertionError("nothing was published")


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


async def code_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_centres_transactions_are_listed_newest_first_by_page(
    stack: Stack, transactions: Any
) -> None:
    docs = [
        document("C1", T0 + n * HOUR, "COMPLETED" if n % 3 == 0 else "RECORDED") for n in range(7)
    ]
    await transactions.insert_many([*docs, document("C2", T0), document("C2", T0 + HOUR)])
    newest_first = [d["_id"] for d in reversed(docs)]
    seen: list[str] = []
    token = ""
    first = await stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(center_id="C1", page_size=3)
    )
    elsewhere = stack.intake.ListTransactions(  # a token continues only its own filters
        intake_pb2.ListTransactionsRequest(
            center_id="C1", status=S.TRANSACTION_STATUS_COMPLETED, page_token=first.next_page_token
        )
    )
    assert await code_of(elsewhere) == grpc.StatusCode.INVALID_ARGUMENT
    while True:
        page = await stack.intake.ListTransactions(
            intake_pb2.ListTransactionsRequest(center_id="C1", page_size=3, page_token=token)
        )
        seen += [t.id for t in page.transactions]
        token = page.next_page_token
        if not token:
            break
    assert seen == newest_first
    completed = await stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(center_id="C1", status=S.TRANSACTION_STATUS_COMPLETED)
    )
    assert [t.id for t in completed.transactions] == [
        docs[6]["_id"],
        docs[3]["_id"],
        docs[0]["_id"],
    ]
    window = await stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(
            center_id="C1",
            submitted_after=stamp(T0 + 2 * HOUR),
            submitted_before=stamp(T0 + 4 * HOUR),
        )
    )
    assert [t.id for t in window.transactions] == [docs[3]["_id"], docs[2]["_id"]]
    bad = stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(center_id="C1", page_token="forged")
    )
    assert await code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_agency_update_is_checked_then_queued_for_the_worker(
    stack: Stack, transactions: Any
) -> None:
    doc = document("C1", T0)
    await transactions.insert_one(doc)
    reply = await stack.intake.UpdateTransactionStatus(
        intake_pb2.UpdateTransactionStatusRequest(
            id=doc["_id"], status=S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, note="passport copy"
        ),
        timeout=10,
    )
    assert reply.change.status == S.TRANSACTION_STATUS_AWAITING_DOCUMENTS
    assert reply.change.note == "passport copy"
    message = await next_message(stack)
    assert message.type == "sanad.v1.TransactionStatusChanged"
    event = events_pb2.TransactionStatusChanged.FromString(message.body)
    assert (event.transaction_id, event.status) == (
        doc["_id"],
        S.TRANSACTION_STATUS_AWAITING_DOCUMENTS,
    )
    assert event.change_id == message.message_id

    def update(status: int, tx: str = doc["_id"]) -> Any:
        return stack.intake.UpdateTransactionStatus(
            intake_pb2.UpdateTransactionStatusRequest(id=tx, status=status), timeout=10
        )

    assert await code_of(update(S.TRANSACTION_STATUS_CANCELLED)) == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        await code_of(update(S.TRANSACTION_STATUS_IN_PROGRESS, "nope")) == grpc.StatusCode.NOT_FOUND
    )
    await transactions.update_one({"_id": doc["_id"]}, {"$set": {"status": "COMPLETED"}})
    for status in (S.TRANSACTION_STATUS_IN_PROGRESS, S.TRANSACTION_STATUS_REJECTED):
        assert await code_of(update(status)) == grpc.StatusCode.FAILED_PRECONDITION


async def test_cancel_before_finish_and_rate_once_after_completion(
    stack: Stack, transactions: Any
) -> None:
    open_doc, done = document("C1", T0, "IN_PROGRESS"), document("C1", T0, "COMPLETED")
    await transactions.insert_many([open_doc, done])

    def cancel(tx: str) -> Any:
        return stack.intake.CancelTransaction(
            intake_pb2.CancelTransactionRequest(id=tx, reason="beneficiary withdrew"), timeout=10
        )

    def rate(tx: str, rating: int) -> Any:
        return stack.intake.RateTransaction(
            intake_pb2.RateTransactionRequest(id=tx, rating=rating), timeout=10
        )

    reply = await cancel(open_doc["_id"])
    assert reply.change.status == S.TRANSACTION_STATUS_CANCELLED
    assert await code_of(cancel(done["_id"])) == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(rate(open_doc["_id"], 5)) == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(rate(done["_id"], 6)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(rate(done["_id"], 5)) == grpc.StatusCode.OK
    assert await code_of(rate(done["_id"], 2)) == grpc.StatusCode.ALREADY_EXISTS
    kinds = [(await next_message(stack)).type for _ in range(2)]
    assert kinds == ["sanad.v1.TransactionStatusChanged", "sanad.v1.TransactionRated"]


async def test_watch_streams_each_stored_change_until_finished(
    stack: Stack, transactions: Any
) -> None:
    doc = document("C1", T0)
    await transactions.insert_one(doc)
    seen: list[int] = []

    async def follow() -> None:
        call = stack.intake.WatchTransaction(
            intake_pb2.WatchTransactionRequest(id=doc["_id"]), timeout=20
        )
        async for message in call:
            seen.append(message.transaction.status)

    watcher = asyncio.create_task(follow())
    for status in ("IN_PROGRESS", "COMPLETED"):
        before = len(seen)
        await eventually(lambda n=before: _grew(seen, n), within_s=5, every_s=0.02)
        await transactions.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {"status": status},
                "$push": {"history": {"status": status, "time": T0 + 2 * HOUR}},
            },
        )
    await asyncio.wait_for(watcher, 10)
    assert seen == [
        S.TRANSACTION_STATUS_RECORDED,
        S.TRANSACTION_STATUS_IN_PROGRESS,
        S.TRANSACTION_STATUS_COMPLETED,
    ]


async def _grew(seen: list[int], size: int) -> bool:
    return len(seen) > size


async def test_the_sla_clock_and_refund_are_shown_from_the_stored_history(
    stack: Stack, transactions: Any
) -> None:
    steps = [
        ("SUBMITTED", T0),
        ("RECORDED", T0),
        ("IN_PROGRESS", T0 + HOUR),
        ("AWAITING_DOCUMENTS", T0 + 2 * HOUR),
        ("IN_PROGRESS", T0 + 26 * HOUR),
        ("AWAITING_AGENCY", T0 + 27 * HOUR),
        ("IN_PROGRESS", T0 + 30 * HOUR),
        ("REJECTED", T0 + 31 * HOUR),
    ]
    doc = document(
        "C1",
        T0,
        "REJECTED",
        history=[{"status": s, "time": t, "actor": "rop"} for s, t in steps],
        finish_time=T0 + 31 * HOUR,
    )
    await transactions.insert_one(doc)
    shown = (
        await stack.intake.GetTransaction(intake_pb2.GetTransactionRequest(id=doc["_id"]))
    ).transaction
    assert shown.paused_seconds == 27 * 3600
    assert shown.sla_elapsed_seconds == 4 * 3600
    assert (shown.fee_baisa, shown.fee_refund_due) == (5000, True)
    assert [c.status for c in shown.history][-1] == S.TRANSACTION_STATUS_REJECTED


def forged_token(raw: str) -> str:
    """A token for center_id C1 around any cursor text (a listing's fingerprint is no secret)."""
    bound = paging.encode_token(PAGE_KIND, ListQuery(center_id="C1").filters(), "X")
    head = base64.urlsafe_b64decode(bound + "=" * (-len(bound) % 4))[:-1]
    return base64.urlsafe_b64encode(head + raw.encode("utf-8", "surrogatepass")).decode()


async def test_forged_page_tokens_are_invalid_on_page_token(
    stack: Stack, transactions: Any
) -> None:
    await transactions.insert_one(document("C1", T0))
    for raw in (
        '{"t":"2024-01-01T00:00:00","id":"\\ud800"}',
        '{"t":"0001-01-01T00:00:00+01:00","id":"T1"}',
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.intake.ListTransactions(
                intake_pb2.ListTransactionsRequest(center_id="C1", page_token=forged_token(raw)),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raw
        assert [f for f, _ in field_violations(refused.value)] == ["page_token"], raw


async def test_listing_from_the_earliest_timestamp_lists_everything(
    stack: Stack, transactions: Any
) -> None:
    doc = document("C1", T0)
    await transactions.insert_one(doc)
    page = await stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(
            center_id="C1", submitted_after=Timestamp(seconds=-62135596800)
        ),
        timeout=10,
    )
    assert [t.id for t in page.transactions] == [doc["_id"]]
