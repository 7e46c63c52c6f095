"""Statistics over rollup counters, and which centres were active in a year; no I/O.

"Active in year Y" (decided here, used by the report and the leaderboard): a centre counts when
its licence was not cancelled before Y began and either its licence history shows it ACTIVE at
some moment of Y, or the rollups show it submitted or completed transactions in Y
(ACTIVITY_COUNTERS; a rating, a rejection or a cancellation alone is not work). The second
clause exists because migrated history (2023-2024 loaded through the batch queue) predates the
registry's licence records: serving transactions is evidence of an operating licence. Omani
staff is the registry's current figure (the registry keeps no staff history), at most MAX_STAFF
(directory.counted_staff). Where an active centre counts (which governorate and wilayat) is
decided in services/metrics/placement.py.
"""

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sanad import rollups
from sanad.domain.clock import FIRST_YEAR, LAST_YEAR
from sanad.domain.places import Place
from sanad.errors import Violation, check
from sanad.registry_past import Dated, in_force

COUNTERS = rollups.COUNTERS
BUCKETS = (*(f"le_{bound}" for bound in rollups.COMPLETION_BOUNDS_S), "le_inf")

# The counters active_in_year reads: every query that decides activity must ask the store for
# them, or a centre that only received transactions (all rejected, say) drops out of its answer.
ACTIVITY_COUNTERS = (rollups.SUBMITTED, rollups.COMPLETED)

ACTIVE = "ACTIVE"
CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Stats:
    """Summed counters and completion histogram with derived means."""

    counts: Mapping[str, int]
    histogram: Mapping[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        return int(self.counts.get(name, 0))

    @property
    def mean_completion_seconds(self) -> float:
        done = self.get(rollups.COMPLETED)
        return self.get(rollups.COMPLETION_SECONDS_SUM) / done if done else 0.0

    @property
    def median_completion_seconds(self) -> float:
        return histogram_quantile(0.5, self.histogram)

    @property
    def mean_rating(self) -> float:
        given = self.get(rollups.RATINGS)
        return self.get(rollups.RATING_SUM) / given if given else 0.0


def sum_rollups(documents: Iterable[Mapping[str, Any]]) -> Stats:
    """Add the counters and histograms of many rollup (or pre-grouped) documents."""
    totals = dict.fromkeys(COUNTERS, 0)
    histogram = dict.fromkeys(BUCKETS, 0)
    for document in documents:
        _add_into(totals, histogram, document, document.get(rollups.HISTOGRAM))
    return Stats(totals, histogram)


def add_stats(parts: Iterable[Stats]) -> Stats:
    """Several Stats added up; one is its own sum (Stats are never changed)."""
    listed = list(parts)
    if len(listed) == 1:
        return listed[0]
    totals = dict.fromkeys(COUNTERS, 0)
    histogram = dict.fromkeys(BUCKETS, 0)
    for part in listed:
        _add_into(totals, histogram, part.counts, part.histogram)
    return Stats(totals, histogram)


def _add_into(
    totals: dict[str, int],
    histogram: dict[str, int],
    counts: Mapping[str, Any],
    buckets: Mapping[str, Any] | None,
) -> None:
    """counts' counters and buckets' completions added to the running sums; a counter or bucket
    that is absent, null or 0 adds nothing (a report adds thousands of these, mostly zeros)."""
    for name in COUNTERS:
        if value := counts.get(name):
            totals[name] += int(value)
    if buckets:
        for bucket in BUCKETS:
            if value := buckets.get(bucket):
                histogram[bucket] += int(value)


def histogram_quantile(q: float, histogram: Mapping[str, int]) -> float:
    """The q-quantile in seconds, interpolated linearly inside its bucket (as Prometheus does).

    Completions beyond the last bound are reported at the last bound; 0 when there are none.
    """
    counts = [int(histogram.get(bucket, 0)) for bucket in BUCKETS]
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    lower, seen = 0.0, 0
    for bound, count in zip(rollups.COMPLETION_BOUNDS_S, counts, strict=False):
        if count and seen + count >= rank:
            return lower + (bound - lower) * (rank - seen) / count
        seen += count
        lower = float(bound)
    return float(rollups.COMPLETION_BOUNDS_S[-1])


@dataclass(frozen=True)
class LicenceChange:
    """One licence transition as the registry recorded it."""

    time: datetime
    to_status: str
    # The expiry the licence held after it; None on transitions recorded before the registry
    # kept it (and before activation).
    expires_at: datetime | None = None


@dataclass(frozen=True)
class CenterFacts:
    """What the report needs to know of a centre, read from the registry."""

    center_id: str
    name_ar: str
    name_en: str
    wilayat_code: str
    omani_staff: int
    licence_history: Sequence[LicenceChange] = ()
    # When the current licence period ends (unset before activation): an ACTIVE licence never
    # renewed stops being active then, though no transition records it.
    licence_expires_at: datetime | None = None
    # Where the registry places the centre now, and every place it was in, oldest first, each
    # since the change that put it there (services/metrics/placement.py says when a place
    # decides where it counts).
    governorate_code: str = ""
    placements: Sequence[Dated[Place]] = ()

    @property
    def governorates(self) -> frozenset[str]:
        """Every governorate the registry has placed the centre in, now included."""
        placed = (p.value.governorate_code for p in self.placements)
        return frozenset({self.governorate_code, *placed})


def placed_at_end_of(center: CenterFacts, year: int) -> Place:
    """Where the registry placed the centre when the year ended (now, for the year in progress);
    where it was first placed when registered after the year; where it is now when its
    placements are not known."""
    _, end = year_bounds(year)
    place = in_force(center.placements, end, before=True)
    return place or Place(center.governorate_code, center.wilayat_code)


@functools.lru_cache(maxsize=64)
def year_bounds(year: int) -> tuple[datetime, datetime]:
    """[1 January Y, 1 January Y+1) in UTC."""
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def licence_active_during(
    history: Sequence[LicenceChange], year: int, expires_at: datetime | None = None
) -> bool:
    """Whether the licence history shows ACTIVE at some moment of the year.

    An ACTIVE stretch runs from its transition to the next one, or to the expiry that transition
    recorded when that comes first, so a licence that lapsed before a late renewal was not
    active in between. A transition recorded without its expiry (before the registry kept it)
    runs to the next one; the last runs to the licence's current expiry, `expires_at`. A
    stretch that ends where it starts (reinstated after its expiry passed) is no stretch.
    """
    start, end = year_bounds(year)
    changes = sorted(history, key=lambda c: c.time)
    for index, change in enumerate(changes):
        if change.to_status != ACTIVE or change.time >= end:
            continue
        next_time = changes[index + 1].time if index + 1 < len(changes) else None
        lapses = change.expires_at or (expires_at if next_time is None else None)
        stops = [moment for moment in (next_time, lapses) if moment is not None]
        if not stops or min(stops) > max(start, change.time):
            return True
    return False


def cancelled_before(history: Sequence[LicenceChange], year: int) -> bool:
    """Whether the licence was cancelled before the year began."""
    start, _ = year_bounds(year)
    return any(c.to_status == CANCELLED and c.time < start for c in history)


def active_in_year(center: CenterFacts, year: int, served: Stats | None) -> bool:
    """The module's definition of an active centre in a year."""
    if cancelled_before(center.licence_history, year):
        return False
    worked = served is not None and sum(served.get(name) for name in ACTIVITY_COUNTERS) > 0
    return worked or licence_active_during(center.licence_history, year, center.licence_expires_at)


def check_year_request(
    governorate_code: str, year: int, this_year: int, limit: int = 0, min_completed: int = 0
) -> None:
    """Invalid naming every bad field of a request for a governorate's year: no governorate, a
    year outside the statistics' years or after this one, a negative limit or minimum."""
    violations = []
    if not governorate_code:
        violations.append(Violation("governorate_code", "is required"))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        violations.append(Violation("year", f"must be between {FIRST_YEAR} and {LAST_YEAR}"))
    elif year > this_year:
        # Nothing happened in it yet: its figures would read 0 and its change -100%.
        violations.append(Violation("year", f"must not be after this year ({this_year})"))
    if limit < 0:
        violations.append(Violation("limit", "must not be negative"))
    if min_completed < 0:
        violations.append(Violation("min_completed", "must not be negative"))
    check(violations)
