"""What each MetricsService call computes: rollup sums from the store, facts from the registry."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sanad import rollups
from services.metrics import award
from services.metrics.directory import CenterDirectory
from services.metrics.domain import (
    ACTIVITY_COUNTERS,
    CenterFacts,
    Stats,
    YearFigures,
    active_in_year,
    change_percent,
    day_bounds,
    sum_rollups,
    year_figures,
)
from services.metrics.store import Document

# What the report needs of each centre's year, and what the award needs; both decide which
# centres are active, so both read ACTIVITY_COUNTERS (COMPLETED among them).
REPORT_COUNTERS = (*ACTIVITY_COUNTERS, rollups.FEES_BAISA)
AWARD_COUNTERS = (
    *ACTIVITY_COUNTERS,
    rollups.REJECTED,
    rollups.COMPLETED_WITHIN_SLA,
    rollups.RATINGS,
    rollups.RATING_SUM,
)


class RollupSums(Protocol):
    """The store as the queries see it."""

    async def sums_by(
        self,
        dimension: str,
        value: str,
        days: tuple[str, str],
        group_by: str | None,
        *,
        counters: Sequence[str] = ...,
        histogram: bool = ...,
    ) -> list[Document]: ...


@dataclass(frozen=True)
class Report:
    """A governorate's year against the year before."""

    current: YearFigures
    previous: YearFigures
    completed_change_percent: float


@dataclass(frozen=True)
class Leaderboard:
    weights: award.Weights
    references: award.References
    entries: list[award.Entry]


class MetricsQueries:
    """The read side of the metrics service."""

    def __init__(
        self,
        store: RollupSums,
        directory: CenterDirectory,
        weights: award.Weights,
        references: award.References,
    ) -> None:
        self.store = store
        self.directory = directory
        self.weights = weights
        self.references = references

    async def center_stats(self, center_id: str, first_day: str, last_day: str) -> Stats:
        return sum_rollups(
            await self.store.sums_by("center_id", center_id, (first_day, last_day), None)
        )

    async def wilayat_stats(self, wilayat: str, first_day: str, last_day: str) -> tuple[int, Stats]:
        """(centres with transactions in the period, their summed counters)."""
        rows = await self.store.sums_by("wilayat_code", wilayat, (first_day, last_day), "center_id")
        return len(rows), sum_rollups(rows)

    async def per_center(
        self, governorate: str, year: int, counters: Sequence[str], histogram: bool
    ) -> dict[str, Stats]:
        """Each centre's rollup sums over one year of a governorate ($group by centre)."""
        rows = await self.store.sums_by(
            "governorate_code",
            governorate,
            day_bounds(year),
            "center_id",
            counters=counters,
            histogram=histogram,
        )
        return {str(row["_id"]): sum_rollups([row]) for row in rows}

    async def report(self, governorate: str, year: int) -> Report:
        """Both years are read concurrently; the registry at the same time."""
        centers, this_year, last_year = await asyncio.gather(
            self.directory.centers(governorate),
            self.per_center(governorate, year, REPORT_COUNTERS, histogram=False),
            self.per_center(governorate, year - 1, REPORT_COUNTERS, histogram=False),
        )
        current = year_figures(year, centers, this_year)
        previous = year_figures(year - 1, centers, last_year)
        change = change_percent(current.transactions_completed, previous.transactions_completed)
        return Report(current, previous, change)

    async def leaderboard(self, governorate: str, year: int, limit: int) -> Leaderboard:
        centers, per_center = await asyncio.gather(
            self.directory.centers(governorate),
            self.per_center(governorate, year, AWARD_COUNTERS, histogram=True),
        )
        scored: Sequence[tuple[CenterFacts, award.Components]] = [
            (
                c,
                award.components_of(
                    per_center.get(c.center_id) or sum_rollups([]), c.omani_staff, self.references
                ),
            )
            for c in centers
            if active_in_year(c, year, per_center.get(c.center_id))
        ]
        entries = award.leaderboard(scored, self.weights)
        return Leaderboard(self.weights, self.references, entries[:limit] if limit > 0 else entries)
