"""The one source of the current time, so rules take `now` as an argument."""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The years whose statistics Sanad Mesh reports; migrated history dated before the first is
# refused (it could be reported on no year, and transaction ids count time from EPOCH).
FIRST_YEAR, LAST_YEAR = 2000, 2100
FIRST_DAY = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_millisecond(moment: datetime) -> datetime:
    """The moment at MongoDB's precision (BSON dates hold whole milliseconds), so what a reply
    shows equals what is stored, and a query bound equals the one the database applies."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def epoch_millis(moment: datetime, *, up: bool = False) -> int:
    """Milliseconds since the epoch, rounded down, as BSON stores a datetime (naive means UTC);
    with up, rounded up: the first millisecond at or after the moment."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if up:
        return -((EPOCH - moment) // timedelta(milliseconds=1))
    return (moment - EPOCH) // timedelta(milliseconds=1)
