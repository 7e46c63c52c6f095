"""The whole dataset: which centres, how many completions each centre has in each year, batches."""

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sanad.seed.centres import SeedCentre, plan_centres
from sanad.seed.history import allocate, item_count, transactions
from sanad.v1 import events_pb2

# Completed transactions per year in Ad Dakhiliyah: 2024 is the published figure, 2023 is
# ~12.7% lower ("a marked increase in 2024 compared with the previous year").
PUBLISHED_COMPLETED = {2023: 66_240, 2024: 74_658}
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class SeedPlan:
    """A deterministic dataset for one governorate: the same seed gives the same data."""

    seed: int = 2024
    governorate: str = "DA"
    years: tuple[int, ...] = (2023, 2024)
    scale: float = 1.0
    completed_by_year: Mapping[int, int] = field(default_factory=lambda: dict(PUBLISHED_COMPLETED))

    @property
    def dataset(self) -> str:
        """What sets this dataset's request ids apart from the same seed's at another scale
        (empty at full scale). The first items of a centre-year are the same at every scale,
        so without it a run at another scale would send a first batch the worker takes as a
        resend, then store the items the earlier scale did not have beside its own."""
        return "" if self.scale == 1.0 else f"-x{self.scale!r}"

    def centres(self) -> list[SeedCentre]:
        return plan_centres(self.seed, self.governorate)

    def target(self, year: int) -> int:
        """Completed transactions planned for the year (scaled for quick runs)."""
        base = self.completed_by_year.get(year, PUBLISHED_COMPLETED[max(PUBLISHED_COMPLETED)])
        return round(base * self.scale)

    def operating(self, centre: SeedCentre, year: int) -> bool:
        """Newcomers open in the last seeded year only."""
        return not centre.opened_in_last_year or year == max(self.years)

    def completed(self, year: int) -> dict[int, int]:
        """Completions per centre index in the year, summing exactly to target(year)."""
        rng = random.Random(f"volume-{self.seed}-{year}")  # noqa: S311 - sample data
        centres = [c for c in self.centres() if self.operating(c, year)]
        # The winners' volumes are fixed so the award order is stable; the others vary by year.
        weights = [
            c.omani_staff * c.profile.volume * (1.0 if c.award_place else rng.uniform(0.9, 1.1))
            for c in centres
        ]
        counts = allocate(self.target(year), weights)
        return {c.index: n for c, n in zip(centres, counts, strict=True)}

    def batches(
        self, centre_ids: Mapping[int, str], fees: Mapping[str, int], batch_size: int
    ) -> Iterator[events_pb2.BatchSubmission]:
        """Every BatchSubmission of the dataset, one centre per batch (batches are per centre).

        Batch ids name a centre, a year and a chunk number, so what a batch id holds depends
        on batch_size and on the scale (its items' request ids name the dataset). The first
        batch is the first chunk of the centre-year with the most items: with any other
        batch_size than a run before, it holds other items than it did then (unless every
        centre-year fits one batch either way, and nothing differs), and with another scale
        items of other request ids, so the batch worker refuses it, and the loader sends
        nothing more (BatchLoader.load).
        """
        centres = self.centres()
        planned = [(y, index, n) for y in self.years for index, n in self.completed(y).items()]
        largest = max(planned, key=lambda each: item_count(centres[each[1]], each[2]))
        for year, index, count in [largest, *(each for each in planned if each != largest)]:
            yield from _chunks(
                self,
                centres[index],
                centre_ids[index],
                year,
                completed=count,
                fees=fees,
                batch_size=batch_size,
            )


def _chunks(
    plan: SeedPlan,
    centre: SeedCentre,
    center_id: str,
    year: int,
    *,
    completed: int,
    fees: Mapping[str, int],
    batch_size: int,
) -> Iterator[events_pb2.BatchSubmission]:
    items: list[events_pb2.HistoricalTransaction] = []
    chunk = 0
    for item in transactions(centre, year, completed, plan.seed, fees, dataset=plan.dataset):
        item.transaction.center_id = center_id
        items.append(item)
        if len(items) == batch_size:
            yield _batch(plan, centre, center_id, year, chunk=chunk, items=items)
            items, chunk = [], chunk + 1
    if items:
        yield _batch(plan, centre, center_id, year, chunk=chunk, items=items)


def _batch(
    plan: SeedPlan,
    centre: SeedCentre,
    center_id: str,
    year: int,
    *,
    chunk: int,
    items: list[events_pb2.HistoricalTransaction],
) -> events_pb2.BatchSubmission:
    return events_pb2.BatchSubmission(
        batch_id=f"seed-{plan.seed}-{centre.licence_number}-{year}-{chunk:03d}",
        center_id=center_id,
        history_items=items,
    )
