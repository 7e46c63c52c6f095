"""The one source of the current time, so rules take `now` as an argument."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_millisecond(moment: datetime) -> datetime:
    """The moment at MongoDB's precision (BSON dates hold whole milliseconds), so what a reply
    shows equals what is stored, and a query bound equals the one the database applies."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
