"""In-memory fakes of what MetricsQueries reads: rollups, the registry's centres and places."""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sanad import rollups
from sanad.domain.places import Place
from sanad.errors import Invalid, Violation
from sanad.registry_past import Dated
from services.metrics import award
from services.metrics.domain import BUCKETS, CenterFacts, LicenceChange
from services.metrics.queries import MetricsQueries
from services.metrics.store import PLACE_KEYS, Document

WEIGHTS = award.Weights(0.35, 0.25, 0.25, 0.15)
REFS = award.References(72.0, 800.0)
KNOWN = {
    "DA": {"DA-NIZ", "DA-BAH", "DA-MAN", "DA-HAM", "DA-ADM", "DA-IZK", "DA-SAM", "DA-BID"},
    "MA": {"MA-MCT", "MA-SEB", "MA-BAW"},
    "MU": {"MU-KHS"},
}


# When the fakes' centres were placed where they are, unless a test says otherwise: before
# any year the tests read.
PLACED_SINCE = datetime(2000, 6, 1, tzinfo=UTC)


def facts(
    center_id: str,
    wilayat: str,
    staff: int,
    *history: tuple[datetime, str],
    was_in: Iterable[str] = (),
    placed: Sequence[tuple[datetime, str]] = (),
    moved_at: datetime = PLACED_SINCE,
) -> CenterFacts:
    """A centre the registry places in `wilayat` (and its governorate) since `moved_at`, and
    before that in each of `placed` (since, wilayat), oldest first, or, less precisely, in
    some wilayat of each governorate of `was_in` before PLACED_SINCE."""
    governorate = _governorate(wilayat)
    earlier = [(datetime(2000, 1, 1, tzinfo=UTC), min(KNOWN[g])) for g in was_in] + list(placed)
    placements = [Dated(since, Place(_governorate(w), w)) for since, w in earlier]
    return CenterFacts(
        center_id,
        f"مركز {center_id}",
        f"Centre {center_id}",
        wilayat,
        staff,
        tuple(LicenceChange(time, status) for time, status in history),
        governorate_code=governorate,
        placements=(*placements, Dated(moved_at, Place(governorate, wilayat))),
    )


def _governorate(wilayat: str) -> str:
    return wilayat.split("-", maxsplit=1)[0]


def made(day: str, center_id: str, wilayat: str, **counters: Any) -> Document:
    """A daily rollup of transactions a centre made in a wilayat."""
    return {
        "day": day,
        "center_id": center_id,
        "governorate_code": wilayat.split("-", maxsplit=1)[0],
        "wilayat_code": wilayat,
        **counters,
    }


def _sum(docs: Iterable[Document], counters: Sequence[str], histogram: bool) -> Document:
    """Like MetricsStore: only the counters asked for are summed, the others read 0."""
    row: Document = dict.fromkeys(rollups.COUNTERS, 0)
    hist = dict.fromkeys(BUCKETS, 0)
    for doc in docs:
        for name in counters:
            row[name] += int(doc.get(name, 0))
        for bucket, count in (doc.get(rollups.HISTOGRAM) or {}).items():
            hist[bucket] += count if histogram else 0
    row[rollups.HISTOGRAM] = hist
    return row


class FakeStore:
    """Daily rollup documents; each read filters and sums them as MetricsStore's do."""

    def __init__(self, docs: Sequence[Document] = ()) -> None:
        self.docs = list(docs)
        self.calls: list[tuple[Any, ...]] = []

    async def sums_by(
        self,
        dimension: str,
        value: str,
        days: tuple[str, str],
        group_by: str | None,
        *,
        counters: Sequence[str] = rollups.COUNTERS,
        histogram: bool = True,
    ) -> list[Document]:
        self.calls.append((dimension, value, days, group_by))
        found = [d for d in self.docs if d[dimension] == value and days[0] <= d["day"] < days[1]]
        groups: dict[Any, list[Document]] = {}
        for doc in found:
            groups.setdefault(doc[group_by] if group_by else None, []).append(doc)
        return [{**_sum(docs, counters, histogram), "_id": key} for key, docs in groups.items()]

    async def year_by_place(
        self,
        year: int,
        *,
        governorate_code: str | None = None,
        center_ids: Sequence[str] | None = None,
        counters: Sequence[str] = rollups.COUNTERS,
        histogram: bool = True,
    ) -> list[Document]:
        self.calls.append(("year_by_place", year, governorate_code, center_ids))
        groups: dict[tuple[str, ...], list[Document]] = {}
        for doc in self.docs:
            if doc["day"][:4] != f"{year:04d}":
                continue
            if governorate_code is not None and doc["governorate_code"] != governorate_code:
                continue
            if center_ids is not None and doc["center_id"] not in center_ids:
                continue
            groups.setdefault(tuple(doc[k] for k in PLACE_KEYS), []).append(doc)
        return [
            {**_sum(docs, counters, histogram), **dict(zip(PLACE_KEYS, key, strict=True))}
            for key, docs in groups.items()
        ]


class FakeDirectory:
    """The registry's centres as they are now, and every place each was in."""

    def __init__(self, centers: Sequence[CenterFacts]) -> None:
        self.list = list(centers)

    async def centers_ever_in(self, governorate_code: str) -> list[CenterFacts]:
        found = [c for c in self.list if governorate_code in c.governorates]
        return sorted(found, key=lambda c: c.center_id)

    async def centers_by_id(self, center_ids: Iterable[str]) -> dict[str, CenterFacts]:
        wanted = set(center_ids)
        return {c.center_id: c for c in self.list if c.center_id in wanted}

    async def exists(self, center_id: str) -> bool:
        return bool(await self.centers_by_id([center_id]))


class FakePlaces:
    """The registry's governorates and wilayats (KNOWN)."""

    async def check_governorate(self, code: str) -> None:
        if code not in KNOWN:
            raise Invalid([Violation("governorate_code", f"unknown governorate {code!r}")])

    async def check_wilayat(self, code: str) -> None:
        if not any(code in wilayats for wilayats in KNOWN.values()):
            raise Invalid([Violation("wilayat_code", f"unknown wilayat {code!r}")])


def queries(
    docs: Sequence[Document],
    centers: Sequence[CenterFacts],
    now: datetime | None = None,
    min_completed: int = 0,
) -> MetricsQueries:
    """MetricsQueries over the fakes; `now` (default 2026-12-03) decides the year in progress;
    min_completed is the award's minimum (none by default)."""
    when = now or datetime.fromisoformat("2026-12-03T12:00:00+00:00")
    return MetricsQueries(
        FakeStore(docs),
        FakeDirectory(centers),
        FakePlaces(),
        WEIGHTS,
        REFS,
        min_completed=min_completed,
        clock=lambda: when,
    )
