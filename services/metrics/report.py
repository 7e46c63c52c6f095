"""The governorate report: a year's figures, and the change in completions against the year
before; no I/O.

The change compares like with like. For a year that is over (or not begun), it compares whole
years. For the year in progress (UTC), whose rollups run only up to today, it compares the
year so far with the previous year from 1 January up to and including the same date (29
February read as 28 February), not with the whole previous year, which in March would show
a growing governorate at about -80%. When the compared span of the previous year completed
nothing there is no change to report: it is None, never 0 (which would read as "no change").
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sanad import rollups
from services.metrics.domain import Stats
from services.metrics.placement import Member


@dataclass(frozen=True)
class YearFigures:
    """A governorate's published figures for one year."""

    year: int
    active_centers: int
    wilayats_with_centers: int
    transactions_completed: int
    omani_staff: int
    fees_baisa: int


@dataclass(frozen=True)
class Report:
    """A governorate's year against the year before."""

    current: YearFigures
    previous: YearFigures
    # Completions of the previous year the change compares with: its whole year, or its span
    # up to compared_until when the year is in progress.
    previous_completed_compared: int
    compared_until: datetime | None
    completed_change_percent: float | None


def year_figures(year: int, members: Sequence[Member], totals: Stats) -> YearFigures:
    """The figures of one year: the centres that count there (placement.py) and the totals of
    the transactions made there."""
    return YearFigures(
        year=year,
        active_centers=len(members),
        wilayats_with_centers=len({m.place.wilayat_code for m in members}),
        transactions_completed=totals.get(rollups.COMPLETED),
        omani_staff=sum(m.center.omani_staff for m in members),
        fees_baisa=totals.get(rollups.FEES_BAISA),
    )


def compared_span(year: int, now: datetime) -> tuple[str, str] | None:
    """The rollup days [first, last) of the previous year that the year in progress is compared
    with; None when `year` is not in progress at `now` (whole years are compared)."""
    if now.astimezone(UTC).year != year:
        return None
    today = now.astimezone(UTC).date()
    same = date(year - 1, today.month, min(today.day, 28) if today.month == 2 else today.day)
    return rollups.day_of(date(year - 1, 1, 1)), rollups.day_of(same + timedelta(days=1))


def change_percent(current: int, previous: int) -> float | None:
    """Change against the previous figure in percent; None when the previous figure is 0."""
    if previous == 0:
        return None
    return round(100.0 * (current - previous) / previous, 2)
