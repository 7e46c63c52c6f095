"""Tracking RPCs at their edges: bad listing filters, millisecond window bounds, a watch that
runs to its deadline, and a rating or status change whose first publish failed.

Everything reaches RabbitMQ through a proxy that can cut intake off the broker; the stored
transactions are written directly, as the ingest worker writes them.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

from sanad.rpc.status import field_violations
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.broker_support import (  # noqa: F401 (fixtures, registered by importing)
    BrokerProxy,
    amqp_url_through_proxy,  # this module's amqp_url goes through the proxy
    proxy_fixture,
)
from tests.integration.conftest import Stack, eventually
from tests.integration.test_intake_tracking import T0, S, code_of, document, next_message, stamp

pytestmark = pytest.mark.integration

MS = timedelta(milliseconds=1)
HALF_MS = timedelta(microseconds=500)


@pytest.fixture
async def transactions(stack: Stack, mongo_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[stack.env["SANAD_MONGO_DATABASE"]]["transactions"]
    await client.close()


async def refusal(call: Any) -> tuple[grpc.StatusCode, list[str]]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code(), [field for field, _ in field_violations(refused.value)]


async def test_an_unknown_status_filter_is_invalid_on_status(
    stack: Stack, transactions: Any
) -> None:
    await transactions.insert_one(document("C1", T0))
    listing = stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(center_id="C1", status=99), timeout=10
    )
    assert await refusal(listing) == (grpc.StatusCode.INVALID_ARGUMENT, ["status"])


async def test_out_of_range_window_bounds_are_invalid_on_their_own_fields(
    stack: Stack, transactions: Any
) -> None:
    await transactions.insert_one(document("C1", T0))
    too_late = Timestamp(seconds=253402300800)  # year 10000
    for field in ("submitted_after", "submitted_before"):
        listing = stack.intake.ListTransactions(
            intake_pb2.ListTransactionsRequest(center_id="C1", **{field: too_late}), timeout=10
        )
        assert await refusal(listing) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    both = stack.intake.ListTransactions(
        intake_pb2.ListTransactionsRequest(
            center_id="C1", status=99, submitted_after=too_late, submitted_before=too_late
        ),
        timeout=10,
    )
    code, fields = await refusal(both)
    assert (code, sorted(fields)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["status", "submitted_after", "submitted_before"],
    )


async def test_adjacent_windows_split_inside_a_millisecond_list_each_transaction_once(
    stack: Stack, transactions: Any
) -> None:
    at = T0 + timedelta(milliseconds=7)
    doc = document("C1", at)
    await transactions.insert_one(doc)

    async def listed(start: Any, end: Any) -> list[str]:
        page = await stack.intake.ListTransactions(
            intake_pb2.ListTransactionsRequest(
                center_id="C1", submitted_after=stamp(start), submitted_before=stamp(end)
            ),
            timeout=10,
        )
        return [t.id for t in page.transactions]

    for split in (at + HALF_MS, at - HALF_MS, at + MS - timedelta(microseconds=1)):
        earlier, later = await listed(T0, split), await listed(split, T0 + timedelta(hours=1))
        assert (earlier + later) == [doc["_id"]], split
        assert (doc["_id"] in earlier) == (at < split), split
    assert await listed(at, at + MS) == [doc["_id"]]  # a whole-millisecond start includes it
    assert await listed(at + MS, at + 2 * MS) == []


async def test_a_watch_that_reaches_its_deadline_ends_deadline_exceeded(
    stack: Stack, transactions: Any
) -> None:
    doc = document("C1", T0)
    await transactions.insert_one(doc)

    async def watched_until_its_end(deadline_s: float) -> grpc.StatusCode:
        call = stack.intake.WatchTransaction(
            intake_pb2.WatchTransactionRequest(id=doc["_id"]), timeout=deadline_s
        )
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    # Deadlines spread over a poll interval (0.2 s), so some poll wakes after intake's own share
    # of the deadline ran out but before the caller's passed. The watches are independent: all
    # at once, each polling from its own start.
    timeouts = (0.3, 0.45, *(1.0 + n / 50 for n in range(1, 10)))
    codes = await asyncio.gather(*(watched_until_its_end(t) for t in timeouts))
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * len(timeouts)


async def completed_to_rate(
    stack: Stack, transactions: Any
) -> tuple[dict[str, Any], Callable[[int], Any]]:
    """A stored COMPLETED transaction, and a RateTransaction call of it with a given rating."""
    done = document("C1", T0, "COMPLETED")
    await transactions.insert_one(done)

    def rate(rating: int) -> Any:
        return stack.intake.RateTransaction(
            intake_pb2.RateTransactionRequest(id=done["_id"], rating=rating), timeout=5
        )

    return done, rate


async def test_a_rating_whose_publish_failed_is_published_when_sent_again(
    stack: Stack, transactions: Any, proxy: BrokerProxy
) -> None:
    _, rate = await completed_to_rate(stack, transactions)

    await proxy.cut()
    assert await code_of(rate(4)) == grpc.StatusCode.UNAVAILABLE
    await proxy.heal()

    async def healthy() -> bool:
        return stack.intake_app.publisher.is_healthy()

    await eventually(healthy, within_s=20)
    # The first publish may have reached the broker unconfirmed, so its claim stands (another
    # value answered OK would be refused by the worker); a different value sends it again.
    assert await code_of(rate(2)) == grpc.StatusCode.ALREADY_EXISTS
    assert await code_of(rate(4)) == grpc.StatusCode.OK
    sent = [await next_message(stack) for _ in range(2)]
    assert {m.type for m in sent} == {"sanad.v1.TransactionRated"}
    events = [events_pb2.TransactionRated.FromString(m.body) for m in sent]
    assert [e.rating for e in events] == [4, 4]
    assert events[0] == events[1]  # the same event: the worker applies it once


async def test_a_status_change_whose_publish_failed_is_answered_ok_when_sent_again(
    stack: Stack, transactions: Any, proxy: BrokerProxy
) -> None:
    doc = document("C1", T0, "IN_PROGRESS")
    await transactions.insert_one(doc)
    completed = intake_pb2.UpdateTransactionStatusRequest(
        id=doc["_id"], status=S.TRANSACTION_STATUS_COMPLETED, note="issued"
    )

    await proxy.cut()
    assert await code_of(stack.intake.UpdateTransactionStatus(completed, timeout=5)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    await proxy.heal()

    async def healthy() -> bool:
        return stack.intake_app.publisher.is_healthy()

    await eventually(healthy, within_s=20)
    # The retry is the accepted change itself: sent again and answered, not judged as
    # "COMPLETED to COMPLETED"; so is a repeat once it is confirmed (the intake hunt's caller
    # retried after the background resend had confirmed it, and was refused).
    reply = await stack.intake.UpdateTransactionStatus(completed, timeout=5)
    assert (reply.change.status, reply.change.note) == (S.TRANSACTION_STATUS_COMPLETED, "issued")
    again = await stack.intake.UpdateTransactionStatus(completed, timeout=5)
    assert again.change == reply.change
    event = events_pb2.TransactionStatusChanged.FromString((await next_message(stack)).body)
    assert (event.sequence, event.note, event.time) == (1, "issued", reply.change.time)


async def test_a_rating_applied_after_its_confirm_failed_is_answered_ok_when_sent_again(
    stack: Stack, transactions: Any, proxy: BrokerProxy
) -> None:
    done, rate = await completed_to_rate(stack, transactions)

    await proxy.cut()
    try:
        assert await code_of(rate(4)) == grpc.StatusCode.UNAVAILABLE
        # As the worker writes it had the publish reached the broker and only its confirm
        # failed; then the retry is answered from the document and the claim, broker or not.
        claim = await transactions.database["intake_requests"].find_one({"rating": 4})
        await transactions.update_one(
            {"_id": done["_id"]}, {"$set": {"rating": 4, "rating_time": claim["time"]}}
        )
        assert await code_of(rate(4)) == grpc.StatusCode.OK
        assert await code_of(rate(5)) == grpc.StatusCode.ALREADY_EXISTS
    finally:
        await proxy.heal()
