"""Where a centre counts in a year, for the governorate report and the award; no I/O.

The rule: a centre counts, in a year, in the governorate and wilayat where its transactions of
that year were made, as the yearly rollups record the place (a transaction counts where its
centre was when it was submitted, sanad/rollups.py). A centre that moved during the year counts
in the one place where most of them (submitted plus completed that year) were made; a tie goes
to where the registry placed the centre when the year ended, then to the lower codes. Only a
centre with no transaction that year counts where the registry placed it when the year ended
(its first place, when it was registered later: domain.placed_at_end_of). So:
- a centre counts in one governorate, and one wilayat, a year;
- moving a centre today does not rewrite the reports of past years: neither the places of their
  transactions nor where the centre stood when they ended change;
- the award lists exactly the centres the report counts active (ranking those that completed its
  minimum), each on all its transactions of the year, wherever they were made;
- transaction figures (completed, fees) stay in the governorate where each was made, so a
  governorate's figures may include transactions of a centre that counts elsewhere that year.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sanad.domain.places import Place
from services.metrics.domain import (
    ACTIVITY_COUNTERS,
    CenterFacts,
    Stats,
    active_in_year,
    add_stats,
    placed_at_end_of,
)


@dataclass(frozen=True)
class PlacedYear:
    """A centre's year in one place: its yearly rollups there, summed."""

    center_id: str
    place: Place
    stats: Stats


@dataclass(frozen=True)
class Member:
    """A centre counted in a governorate's year: its facts, where it counts, its whole year."""

    center: CenterFacts
    place: Place
    stats: Stats


def _made(stats: Stats) -> int:
    return sum(stats.get(name) for name in ACTIVITY_COUNTERS)


def home_places(rows: Iterable[PlacedYear], at_end: Mapping[str, Place]) -> dict[str, Place]:
    """Where each centre counts in the year the rows are of (see the module's rule); `at_end`
    is where the registry placed each centre when that year ended."""
    worked: defaultdict[str, list[PlacedYear]] = defaultdict(list)
    for row in rows:
        if _made(row.stats) > 0:
            worked[row.center_id].append(row)
    homes = dict(at_end)
    for center_id, places in worked.items():
        then = at_end.get(center_id)
        best = min(
            places,
            key=lambda r: (
                -_made(r.stats),
                r.place != then,
                r.place.governorate_code,
                r.place.wilayat_code,
            ),
        )
        homes[center_id] = best.place
    return homes


def members_of(
    governorate: str,
    year: int,
    rows: Sequence[PlacedYear],
    facts: Mapping[str, CenterFacts],
) -> tuple[list[Member], Stats]:
    """The active centres that count in the governorate's year, by id, and the totals of the
    year's transactions made there.

    rows: the year's rollups, per place, of every centre in `facts` and of every centre with
    transactions in the governorate that year; facts: those centres the registry knows, every
    centre it ever placed in the governorate among them.
    """
    at_end = {cid: placed_at_end_of(f, year) for cid, f in facts.items()}
    homes = home_places(rows, at_end)
    by_center: defaultdict[str, list[Stats]] = defaultdict(list)
    for row in rows:
        by_center[row.center_id].append(row.stats)
    members = []
    for center_id in sorted(facts):
        whole = add_stats(by_center.get(center_id, []))
        home = homes[center_id]
        if home.governorate_code == governorate and active_in_year(facts[center_id], year, whole):
            members.append(Member(facts[center_id], home, whole))
    totals = add_stats(r.stats for r in rows if r.place.governorate_code == governorate)
    return members, totals
