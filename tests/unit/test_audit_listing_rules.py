"""ListAuditEvents' request rules: every bad field named at once, and time bounds before the ids
begin (1970) read as what they mean."""

from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.domain.clock import epoch_millis
from sanad.domain.ids import first_id
from sanad.errors import Invalid
from sanad.security.audit_listing import AuditListing, AuditQuery
from sanad.security.audit_service import AuditServicer
from sanad.v1 import audit_pb2


class Found:
    """The chain find() returns: sort, skip and limit, then no documents."""

    def sort(self, *_: Any) -> "Found":
        return self

    def skip(self, _: int) -> "Found":
        return self

    def limit(self, _: int) -> "Found":
        return self

    def __aiter__(self) -> "Found":
        return self

    async def __anext__(self) -> dict[str, Any]:
        raise StopAsyncIteration


class Collection:
    """Remembers the filter of each find."""

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any]) -> Found:
        self.filters.append(query)
        return Found()


def listing() -> tuple[AuditListing, Collection]:
    collection = Collection()
    return AuditListing({"audit_log": collection}), collection  # type: ignore[arg-type]


async def test_every_bad_field_of_an_audit_listing_is_named_in_one_answer() -> None:
    servicer = AuditServicer(listing()[0])
    request = audit_pb2.ListAuditEventsRequest(
        start_time=Timestamp(seconds=253402300800),  # year 10000
        end_time=Timestamp(seconds=-62135596801),  # before year 1
        page_size=-1,
        page_token="x",
    )
    with pytest.raises(Invalid) as refused:
        await servicer.ListAuditEvents(request, None)
    fields = [violation.field for violation in refused.value.violations]
    assert fields == ["start_time", "end_time", "page_size", "page_token"]


async def test_a_start_before_1970_bounds_nothing_and_an_end_before_1970_bounds_out_all() -> None:
    audit, collection = listing()
    before_ids = datetime(1969, 7, 20, 20, 17, tzinfo=UTC)
    await audit.find(AuditQuery(start=before_ids))
    await audit.find(AuditQuery(end=before_ids))
    # The smallest id there is: every event is at or after it, none before it.
    assert collection.filters == [{"_id": {"$gte": "0" * 26}}, {"_id": {"$lt": "0" * 26}}]


async def test_a_bound_between_milliseconds_keeps_an_events_whole_millisecond_on_its_side() -> None:
    # An event's time is a whole millisecond. Rounded down, a start half a millisecond after
    # an event still listed it, and an end half a millisecond after it left it out (audit
    # helper's repro).
    audit, collection = listing()
    event = datetime(2026, 12, 6, 6, 0, 56, 129_000, tzinfo=UTC)
    half_after = event.replace(microsecond=129_500)
    await audit.find(AuditQuery(start=half_after, end=half_after))
    await audit.find(AuditQuery(start=event, end=event))
    millisecond = epoch_millis(event)
    assert collection.filters == [
        {"_id": {"$gte": first_id(millisecond + 1), "$lt": first_id(millisecond + 1)}},
        {"_id": {"$gte": first_id(millisecond), "$lt": first_id(millisecond)}},
    ]
