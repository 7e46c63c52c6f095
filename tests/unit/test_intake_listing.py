"""ListTransactions: forged page tokens are INVALID_ARGUMENT; every bad field of a request is
named at once; a time filter at the Unix epoch filters; the earliest start time is served."""

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad import paging
from sanad.domain.clock import EPOCH
from sanad.domain.ids import new_id
from sanad.domain.transactions import Status
from sanad.errors import Invalid
from sanad.paging import MAX_TOKEN_LENGTH
from sanad.security.identity import DEV_ADMIN, set_current
from sanad.v1 import intake_pb2
from services.intake.listing import PAGE_KIND, ListQuery, decode_token, encode_token
from services.intake.reading import Reader
from services.intake.servicer import IntakeServicer, list_query_from_proto
from services.intake.store import TransactionStore
from services.intake.tracking import MAX_NOTE_LENGTH
from tests.unit.intake_tracking_fakes import T0, FakeStore, stored

EARLIEST = datetime.min.replace(tzinfo=UTC)


QUERY = ListQuery(center_id="C1")


def forged(raw: str) -> str:
    """A token for QUERY's filters around any cursor text: the fingerprint is no secret."""
    fingerprinted = paging.encode_token(PAGE_KIND, QUERY.filters(), "X").encode()
    bound = base64.urlsafe_b64decode(fingerprinted + b"=" * (-len(fingerprinted) % 4))[:-1]
    return base64.urlsafe_b64encode(bound + raw.encode("utf-8", "surrogatepass")).decode()


@pytest.mark.parametrize(
    "token",
    [
        forged('{"t":"2024-01-01T00:00:00","id":"\\ud800"}'),  # a lone surrogate
        forged('{"t":"0001-01-01T00:00:00+01:00","id":"T1"}'),  # before year 1 in UTC
        forged('{"t":"9999-12-31T23:59:59-01:00","id":"T1"}'),  # after year 9999 in UTC
        forged('{"t":"2024-01-01T00:00:00","id":{"$gt":""}}'),
        forged('{"t":"2024-01-01T00:00:00","id":7}'),
        forged('{"t":20240101,"id":"T1"}'),
        forged('["2024-01-01T00:00:00","T1"]'),
        forged('"t"'),
        forged("[" * 5000),  # nested deeper than json's recursion allows
        forged('{"t":"2024-01-01T00:00:00","id":"' + "T" * MAX_TOKEN_LENGTH + '"}'),  # too long
        "not-a-token",
    ],
    ids=[
        "surrogate",
        "underflow",
        "overflow",
        "id-object",
        "id-number",
        "time-number",
        "list",
        "string",
        "nested",
        "overlong",
        "not-base64-json",
    ],
)
def test_a_forged_page_token_is_invalid_on_page_token(token: str) -> None:
    with pytest.raises(Invalid) as refused:
        decode_token(QUERY, token)
    assert [v.field for v in refused.value.violations] == ["page_token"]


def test_a_deeply_nested_token_is_invalid_even_where_its_length_would_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paging, "MAX_TOKEN_LENGTH", 100_000)
    with pytest.raises(Invalid) as refused:
        decode_token(QUERY, forged("[" * 5000))  # json gives up with RecursionError
    assert [v.field for v in refused.value.violations] == ["page_token"]


def test_an_issued_token_decodes_to_an_encodable_utc_cursor() -> None:
    moment = datetime(2024, 6, 1, 8, 0, 0, 123000, tzinfo=UTC)
    cursor = decode_token(QUERY, encode_token(QUERY, {"submit_time": moment, "_id": "01JTX"}))
    assert cursor == (moment, "01JTX")
    bson.encode({"t": cursor[0], "id": cursor[1]})
    naive = decode_token(QUERY, forged('{"t":"2024-01-01T00:00:00","id":"T1"}'))
    assert naive is not None
    assert naive[0] == datetime(2024, 1, 1, tzinfo=UTC)


def test_the_longest_issued_token_is_well_within_the_token_bound() -> None:
    latest = datetime.max.replace(tzinfo=UTC)  # every digit of the time written out
    last_id = new_id()  # every transaction id is 26 characters (sanad.domain.ids)
    longest_filters = ListQuery(
        center_id="C" * 128,  # the longest code a centre id may be (sanad.domain.codes)
        status=Status.AWAITING_DOCUMENTS,
        submitted_after=latest,
        submitted_before=latest,
    )
    longest = encode_token(longest_filters, {"submit_time": latest, "_id": last_id})
    assert decode_token(longest_filters, longest) == (latest, last_id)
    assert 2 * len(longest) <= MAX_TOKEN_LENGTH


@pytest.mark.parametrize(
    "other",
    [
        ListQuery(center_id="C2"),
        ListQuery(center_id="C1", status=Status.COMPLETED),
        ListQuery(center_id="C1", submitted_after=datetime(2024, 1, 1, tzinfo=UTC)),
        ListQuery(center_id="C1", submitted_before=datetime(2024, 1, 1, tzinfo=UTC)),
    ],
    ids=["centre", "status", "after", "before"],
)
def test_a_page_token_continues_only_a_listing_with_the_same_filters(other: ListQuery) -> None:
    token = encode_token(QUERY, {"submit_time": T0, "_id": "01JTX"})
    with pytest.raises(Invalid) as refused:
        decode_token(other, token)
    assert [v.field for v in refused.value.violations] == ["page_token"]
    resized = ListQuery(center_id="C1", page_size=7, after=(T0, "01JTW"))
    assert decode_token(resized, token) == (T0, "01JTX")


def refused_fields(request: intake_pb2.ListTransactionsRequest) -> list[str]:
    with pytest.raises(Invalid) as refused:
        list_query_from_proto(request)
    return sorted(v.field for v in refused.value.violations)


def test_every_bad_listing_field_is_named_in_one_answer() -> None:
    year_10000 = Timestamp(seconds=253402300800)
    everything = intake_pb2.ListTransactionsRequest(
        center_id="C1",
        status=99,  # type: ignore[arg-type]  # a number this version does not know
        submitted_after=year_10000,
        submitted_before=year_10000,
        page_size=-1,
        page_token="forged",
    )
    assert refused_fields(everything) == [
        "page_size",
        "page_token",
        "status",
        "submitted_after",
        "submitted_before",
    ]
    paging = intake_pb2.ListTransactionsRequest(center_id="C1", page_size=-1, page_token="x")
    assert refused_fields(paging) == ["page_size", "page_token"]


def test_a_time_filter_set_to_the_unix_epoch_filters_and_an_unset_one_does_not() -> None:
    epoch = Timestamp(seconds=0, nanos=0)
    before = list_query_from_proto(
        intake_pb2.ListTransactionsRequest(center_id="C1", submitted_before=epoch)
    )
    after = list_query_from_proto(
        intake_pb2.ListTransactionsRequest(center_id="C1", submitted_after=epoch)
    )
    unset = list_query_from_proto(intake_pb2.ListTransactionsRequest(center_id="C1"))
    assert (before.submitted_after, before.submitted_before) == (None, EPOCH)
    assert (after.submitted_after, after.submitted_before) == (EPOCH, None)
    assert (unset.submitted_after, unset.submitted_before) == (None, None)


class Call:
    """A call's context as the servicer reads it: no deadline."""

    def time_remaining(self) -> float | None:
        return None


async def test_a_page_too_large_for_one_reply_is_cut_after_its_last_transaction_sent() -> None:
    limit = 64 * 1024
    note = "د" * MAX_NOTE_LENGTH  # 2,000 bytes in UTF-8
    docs = [
        stored(
            _id=f"T{n:02d}",
            submit_time=T0 - timedelta(minutes=n),
            history=[{"status": "RECORDED", "time": T0, "actor": "a", "note": note}] * 5,
        )
        for n in range(20)
    ]
    reader = Reader(FakeStore(*docs))
    servicer = IntakeServicer(
        None,  # type: ignore[arg-type]
        reader,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        1.0,
        max_message_bytes=limit,
    )
    request = intake_pb2.ListTransactionsRequest(center_id="C1", page_size=500)

    async def as_admin() -> intake_pb2.ListTransactionsResponse:
        set_current(DEV_ADMIN)  # in this task's own copy of the context, as a call's
        return await servicer.ListTransactions(request, Call())

    reply = await asyncio.create_task(as_admin())
    sent = [t.id for t in reply.transactions]
    assert 1 < len(sent) < len(docs)
    assert sent == [d["_id"] for d in docs[: len(sent)]]
    assert reply.ByteSize() <= limit
    last = docs[len(sent) - 1]
    assert decode_token(QUERY, reply.next_page_token) == (last["submit_time"], last["_id"])


class FakeCursor:
    def sort(self, keys: Any) -> "FakeCursor":
        return self

    def limit(self, count: int) -> "FakeCursor":
        return self

    async def to_list(self) -> list[Any]:
        return []


class FakeTransactions:
    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any]) -> FakeCursor:
        bson.encode(query)  # what pymongo would send
        self.filters.append(query)
        return FakeCursor()


async def test_listing_from_the_earliest_timestamp_has_no_lower_bound() -> None:
    transactions = FakeTransactions()
    store = TransactionStore({"transactions": transactions})  # type: ignore[arg-type]
    for start in (EARLIEST, EARLIEST.replace(microsecond=999)):
        assert await store.list_transactions(ListQuery("C1", submitted_after=start)) == []
    # Inside year 1's first millisecond the start rounds up: only that millisecond is out.
    assert transactions.filters == [
        {"center_id": "C1"},
        {"center_id": "C1", "submit_time": {"$gt": EARLIEST}},
    ]
    later = datetime(2024, 1, 1, tzinfo=UTC)
    await store.list_transactions(ListQuery("C1", submitted_after=later))
    assert transactions.filters[-1]["submit_time"]["$gt"] < later


async def test_window_bounds_inside_a_millisecond_round_up_and_the_latest_end_has_none() -> None:
    transactions = FakeTransactions()
    store = TransactionStore({"transactions": transactions})  # type: ignore[arg-type]
    at = datetime(2024, 1, 1, 0, 0, 0, 7500, tzinfo=UTC)  # 7.5 ms
    await store.list_transactions(ListQuery("C1", submitted_after=at, submitted_before=at))
    window = transactions.filters[-1]["submit_time"]
    # ">= 7.5 ms" is "> 7 ms"; "< 7.5 ms" is "< 8 ms" (a time stored at 7 ms is before it).
    assert window == {"$gt": at.replace(microsecond=7000), "$lt": at.replace(microsecond=8000)}
    latest = datetime.max.replace(tzinfo=UTC)
    await store.list_transactions(ListQuery("C1", submitted_before=latest))
    assert transactions.filters[-1] == {"center_id": "C1"}
