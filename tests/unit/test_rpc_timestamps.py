"""Timestamps: the fast conversion agrees with protobuf's own for every datetime it can hold."""

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from sanad.rpc.timestamps import from_timestamp, to_timestamp

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
