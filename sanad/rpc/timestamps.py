"""protobuf Timestamp <-> timezone-aware datetime."""

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.domain.clock import EPOCH
from sanad.errors import Invalid, Violation


def to_timestamp(moment: datetime | None) -> Timestamp | None:
    """A Timestamp, or None for an unset time (so the field stays unset); naive means UTC.

    Exact integer arithmetic, a third of the cost of Timestamp.FromDatetime, which every
    centre of a listing and every stored time of a reply pays several times.
    """
    if moment is None:
        return None
    seconds, nanos = timestamp_fields(moment)
    return Timestamp(seconds=seconds, nanos=nanos)


def timestamp_fields(moment: datetime) -> tuple[int, int]:
    """A Timestamp's seconds and nanos of a moment (naive means UTC), as to_timestamp sets them:
    for a Timestamp field set in place."""
    since = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - EPOCH
    return since.days * 86_400 + since.seconds, since.microseconds * 1000


def from_timestamp(stamp: Timestamp, field: str = "timestamp") -> datetime | None:
    """A UTC datetime, or None when the Timestamp is zero: for a time that is never the epoch,
    such as a licence's expiry. A request's time filter, where the epoch is a time like any
    other, is read by time_field.

    A Timestamp outside protobuf's valid range (years 1-9999, nanos 0-999,999,999) is a bad
    request: Invalid naming the field, never an INTERNAL error.
    """
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return _datetime(stamp, field)


def time_field(message: Message, field: str) -> datetime | None:
    """The time in a message's Timestamp field, None when the field is unset.

    Presence, not zero, says unset: a Timestamp field is a message, and one set to 0 is the
    Unix epoch (a filter "before 1970-01-01T00:00:00Z" matches nothing, not everything). Out of
    range: Invalid naming the field, as in from_timestamp.
    """
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return _datetime(stamp, field)


def _datetime(stamp: Timestamp, field: str) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise Invalid([Violation(field, "not a valid timestamp")]) from None
