"""ListTransactions: forged page tokens are INVALID_ARGUMENT; the earliest start time is served."""

import base64
from datetime import UTC, datetime
from typing import Any

import bson
import pytest

from sanad.errors import Invalid
from services.intake.listing import ListQuery, decode_token, encode_token
from services.intake.store import TransactionStore

EARLIEST = datetime.min.replace(tzinfo=UTC)


def forged(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode()


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
        "not-base64-json",
    ],
)
def test_a_forged_page_token_is_invalid_on_page_token(token: str) -> None:
    with pytest.raises(Invalid) as refused:
        decode_token(token)
    assert [v.field for v in refused.value.violations] == ["page_token"]


def test_an_issued_token_decodes_to_an_encodable_utc_cursor() -> None:
    moment = datetime(2024, 6, 1, 8, 0, 0, 123000, tzinfo=UTC)
    cursor = decode_token(encode_token({"submit_time": moment, "_id": "01JTX"}))
    assert cursor == (moment, "01JTX")
    bson.encode({"t": cursor[0], "id": cursor[1]})
    naive = decode_token(forged('{"t":"2024-01-01T00:00:00","id":"T1"}'))
    assert naive[0] == datetime(2024, 1, 1, tzinfo=UTC)


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
