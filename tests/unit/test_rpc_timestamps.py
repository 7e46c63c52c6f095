"""Timestamps: the fast conversion agrees with protobuf's own for every datetime it can hold; a
time field is unset by its absence, and one set to the Unix epoch filters by it."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from sanad.domain.clock import EPOCH
from sanad.errors import Invalid
from sanad.rpc.timestamps import from_timestamp, time_field, to_timestamp
from sanad.security.audit_listing import AuditQuery
from sanad.security.audit_service import AuditServicer
from sanad.v1 import audit_pb2

OFFSETS = st.one_of(
    st.none(),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)


@given(st.datetimes(timezones=OFFSETS))
def test_to_timestamp_is_protobufs_conversion_with_naive_as_utc(moment: datetime) -> None:
    expected = Timestamp()
    try:
        expected.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except (ValueError, OverflowError):
        return  # outside protobuf's years 1-9999 once moved to UTC
    assert to_timestamp(moment) == expected


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).filter(
        lambda m: m != datetime(1970, 1, 1)  # the zero Timestamp, which reads as unset
    )
)
def test_a_time_comes_back_as_it_went_out(moment: datetime) -> None:
    stamp = to_timestamp(moment.replace(tzinfo=UTC))
    assert stamp is not None
    assert from_timestamp(stamp) == moment.replace(tzinfo=UTC)


def test_an_unset_time_stays_unset() -> None:
    assert to_timestamp(None) is None


def test_a_time_field_is_unset_by_absence_and_a_set_zero_is_the_epoch() -> None:
    request = audit_pb2.ListAuditEventsRequest(end_time=Timestamp(seconds=0))
    assert time_field(request, "end_time") == EPOCH
    assert time_field(request, "start_time") is None
    request.start_time.seconds = 253402300800  # year 10000
    with pytest.raises(Invalid) as refused:
        time_field(request, "start_time")
    assert [v.field for v in refused.value.violations] == ["start_time"]


class Listing:
    """AuditListing's find, remembering the query."""

    def __init__(self) -> None:
        self.queries: list[AuditQuery] = []

    async def find(self, query: AuditQuery) -> tuple[list[Any], str]:
        self.queries.append(query)
        return [], ""


async def test_an_audit_listing_bounded_at_the_epoch_keeps_its_bound() -> None:
    listing = Listing()
    servicer = AuditServicer(listing)  # type: ignore[arg-type]
    epoch = Timestamp(seconds=0)
    await servicer.ListAuditEvents(audit_pb2.ListAuditEventsRequest(end_time=epoch), None)
    await servicer.ListAuditEvents(audit_pb2.ListAuditEventsRequest(start_time=epoch), None)
    await servicer.ListAuditEvents(audit_pb2.ListAuditEventsRequest(), None)
    assert [(q.start, q.end) for q in listing.queries] == [
        (None, EPOCH),
        (EPOCH, None),
        (None, None),
    ]
