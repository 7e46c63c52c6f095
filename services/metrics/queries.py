"""What each MetricsService call computes: rollup sums from the store, facts from the registry."""

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from sanad import rollups
from sanad.domain.clock import utcnow
from sanad.domain.places import Place
from sanad.errors import NotFound
from services.metrics import award
from services.metrics.directory import CenterDirectory
from services.metrics.domain import ACTIVITY_COUNTERS, Stats, active_in_year, sum_rollups
from services.metrics.placement import Member, PlacedYear, members_of
from services.metrics.places import KnownPlaces
from services.metrics.report import Report, change_percent, compared_span, year_figures
from services.metrics.store import Document

# What the report needs of each centre's year, and what the award needs; both decide which
# centres are active and where they count, so both read ACTIVITY_COUNTERS (COMPLETED among them).
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

    async def year_by_place(
        self,
        year: int,
        *,
        governorate_code: str | None = ...,
        center_ids: Sequence[str] | None = ...,
        counters: Sequence[str] = ...,
        histogram: bool = ...,
    ) -> list[Document]: ...


@dataclass(frozen=True)
class Leaderboard:
    weights: award.Weights
    references: award.References
    min_completed: int
    entries: list[award.Entry]


def placed(rows: Iterable[Document]) -> list[PlacedYear]:
    """Yearly rows per centre and place, each place once (the reads overlap)."""
    found: dict[tuple[str, str, str], PlacedYear] = {}
    for row in rows:
        place = Place(str(row["governorate_code"]), str(row["wilayat_code"]))
        key = (str(row["center_id"]), place.governorate_code, place.wilayat_code)
        found[key] = PlacedYear(key[0], place, sum_rollups([row]))
    return list(found.values())


class MetricsQueries:
    """The read side of the metrics service."""

    def __init__(
        self,
        store: RollupSums,
        directory: CenterDirectory,
        places: KnownPlaces,
        weights: award.Weights,
        references: award.References,
        *,
        min_completed: int = 0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.directory = directory
        self.places = places
        self.weights = weights
        self.references = references
        self.min_completed = min_completed  # the award's, unless a request names its own
        self.clock = clock

    async def center_stats(self, center_id: str, first_day: str, last_day: str) -> Stats:
        """The centre's counters over the days; NotFound for a centre the registry never had
        (it deletes none), so a mistyped id is not answered with zeros.

        Only a centre without transactions in the period is looked up in the registry's copy:
        one with them exists, and is answered even while that copy cannot be read.
        """
        rows = await self.store.sums_by("center_id", center_id, (first_day, last_day), None)
        if not rows and not await self.directory.exists(center_id):
            raise NotFound(f"centre {center_id!r} not found")
        return sum_rollups(rows)

    async def wilayat_stats(self, wilayat: str, first_day: str, last_day: str) -> tuple[int, Stats]:
        """(centres that submitted or completed transactions in the period, the wilayat's
        summed counters)."""
        await self.places.check_wilayat(wilayat)
        rows = await self.store.sums_by("wilayat_code", wilayat, (first_day, last_day), "center_id")
        working = [row for row in rows if any(row.get(name) for name in ACTIVITY_COUNTERS)]
        return len(working), sum_rollups(rows)

    async def members(
        self, governorate: str, year: int, counters: Sequence[str], histogram: bool
    ) -> tuple[list[Member], Stats]:
        """The centres that count in the governorate's year and its transaction totals.

        One yearly rollup per centre and place: the governorate's own rows, then the rows
        anywhere of the few centres that may have worked elsewhere that year (placement.py
        decides where each counts). A read by centre ids costs SecantusDB about 0.4 ms an id,
        so it is kept to centres that moved governorate (the registry's change stream shows every
        place a centre was in), that worked here without the registry placing them here, or that
        would count here by licence alone, without a transaction here. Centres placed here
        before and elsewhere now are among them: a past year may count them here.
        """
        yearly = partial(self.store.year_by_place, year, counters=counters, histogram=histogram)
        ever_here = {c.center_id: c for c in await self.directory.centers_ever_in(governorate)}
        made_here = await yearly(governorate_code=governorate)
        worked_here = {str(row["center_id"]) for row in made_here}
        left = worked_here - set(ever_here)
        facts = ever_here | await self.directory.centers_by_id(sorted(left))
        maybe_elsewhere = sorted(
            center_id
            for center_id, center in facts.items()
            if center_id in left
            or len(center.governorates) > 1
            or (center_id not in worked_here and active_in_year(center, year, None))
        )
        elsewhere = await yearly(center_ids=maybe_elsewhere) if maybe_elsewhere else []
        return members_of(governorate, year, placed([*made_here, *elsewhere]), facts)

    async def report(self, governorate: str, year: int) -> Report:
        """Both years, and the previous year's span compared with a year in progress, read
        concurrently."""
        await self.places.check_governorate(governorate)
        span = compared_span(year, self.clock())
        (members, totals), (before, before_totals), so_far = await asyncio.gather(
            self.members(governorate, year, REPORT_COUNTERS, histogram=False),
            self.members(governorate, year - 1, REPORT_COUNTERS, histogram=False),
            self._completed(governorate, span),
        )
        current = year_figures(year, members, totals)
        previous = year_figures(year - 1, before, before_totals)
        compared = previous.transactions_completed if so_far is None else so_far
        return Report(
            current=current,
            previous=previous,
            previous_completed_compared=compared,
            compared_until=(
                None if span is None else datetime.fromisoformat(span[1]).replace(tzinfo=UTC)
            ),
            completed_change_percent=change_percent(current.transactions_completed, compared),
        )

    async def _completed(self, governorate: str, days: tuple[str, str] | None) -> int | None:
        """Transactions completed in the governorate over the days; None without days."""
        if days is None:
            return None
        rows = await self.store.sums_by(
            "governorate_code",
            governorate,
            days,
            None,
            counters=(rollups.COMPLETED,),
            histogram=False,
        )
        return sum_rollups(rows).get(rollups.COMPLETED)

    async def leaderboard(
        self, governorate: str, year: int, limit: int, min_completed: int | None = None
    ) -> Leaderboard:
        """The centres the report counts active, ranked on all their transactions of the year
        (those that completed at least min_completed; the service's minimum when None)."""
        minimum = self.min_completed if min_completed is None else min_completed
        await self.places.check_governorate(governorate)
        members, _ = await self.members(governorate, year, AWARD_COUNTERS, histogram=True)
        scored = [
            (m.center, award.components_of(m.stats, m.center.omani_staff, self.references))
            for m in members
        ]
        entries = award.leaderboard(scored, self.weights, minimum)
        return Leaderboard(
            self.weights, self.references, minimum, entries[:limit] if limit > 0 else entries
        )
