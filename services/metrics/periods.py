"""Which rollup documents cover a range of days: whole years, whole months, and the days left.

A range [start, end) of days is split into as few pieces as possible, each read from the coarsest
collection that covers it exactly (sanad/rollups.py): a calendar year reads one yearly document
per centre, a quarter three monthly ones, and only the ragged ends read daily documents.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sanad import rollups


@dataclass(frozen=True)
class Piece:
    """Documents of `collection` whose `field` lies in [low, high)."""

    collection: str
    field: str
    low: str
    high: str


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _year(day: date) -> str:
    return f"{day.year:04d}"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _step(current: date, end: date) -> tuple[Piece, date]:
    """The coarsest piece starting at current that ends at or before end."""
    if current.month == 1 and current.day == 1 and end.year > current.year:
        following = date(end.year, 1, 1)  # every whole year up to end at once
        return Piece(rollups.YEARLY, "period", _year(current), _year(following)), following
    if current.day == 1 and _next_month(current) <= end:
        following = min(date(current.year + 1, 1, 1), date(end.year, end.month, 1))
        return Piece(rollups.MONTHLY, "period", _month(current), _month(following)), following
    following = min(_next_month(current), end)
    return Piece(
        rollups.COLLECTION, "day", rollups.day_of(current), rollups.day_of(following)
    ), following


# Nothing is counted after the year 9998: the open end, and what keeps month arithmetic in range.
LAST = date(9999, 1, 1)
# The day strings that stand for an unset start or end of a range.
OPEN_START, OPEN_END = "0000-00-00", "9999-99-99"


def day_range(
    start: datetime | None, end: datetime | None, *, end_at_midnight: bool
) -> tuple[str, str]:
    """The rollup days [first, last) a period [start, end) touches, unset ends open.

    Rollups count per UTC day, so a day partly inside the period counts whole: the start is
    rounded down to its day, the end up to the next midnight unless it is one already (to the
    nanosecond, which the caller reads off the request). A period of "today so far" reads
    today; one from midnight to midnight reads exactly its days.
    """
    first = rollups.day_of(start) if start else OPEN_START
    if end is None:
        return first, OPEN_END
    if end_at_midnight:
        return first, rollups.day_of(end)
    return first, day_after(end)


def day_after(moment: date) -> str:
    """The rollup day after the one `moment` falls on: the exclusive end of a range that counts
    that day whole (LAST from the year 9999 on, where nothing is counted)."""
    day = date(moment.year, moment.month, moment.day)
    return rollups.day_of(day + timedelta(days=1) if day < LAST else LAST)


def _parse(text: str, open_text: str, open_end: date) -> date:
    """An ISO day, clamped to LAST; open_text means open_end.

    Anything else that is not a day is a ValueError, never an open end: a badly formatted bound
    must not widen the range silently.
    """
    if text == open_text:
        return open_end
    return min(date.fromisoformat(text), LAST)


def pieces(first_day: str, end_day: str) -> list[Piece]:
    """The pieces covering first_day <= day < end_day (ISO dates, or OPEN_START / OPEN_END)."""
    current = _parse(first_day, OPEN_START, date.min)
    end = _parse(end_day, OPEN_END, LAST)
    found: list[Piece] = []
    while current < end:
        piece, current = _step(current, end)
        found.append(piece)
    return found
