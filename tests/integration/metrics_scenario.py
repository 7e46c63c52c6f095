"""A varied set of transactions as intake would publish them (submissions, numbered status
changes with pauses, cancellations, rejections, ratings, late completions, transactions across day
and year boundaries), and the figures the metrics service should give, worked out by brute force
from the transactions themselves, not from any rollup."""

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sanad.domain.transactions import FINISHED, PAUSED, REFUNDABLE, Status

HOUR = 3600
# Moments transactions start near: midnights of year ends, a leap day, ordinary days.
ANCHORS = (
    datetime(2023, 12, 31, 22, tzinfo=UTC),
    datetime(2024, 2, 28, 23, tzinfo=UTC),
    datetime(2024, 6, 15, 8, tzinfo=UTC),
    datetime(2024, 12, 31, 20, tzinfo=UTC),
    datetime(2025, 1, 1, 0, tzinfo=UTC),
    datetime(2025, 7, 31, 23, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 30, tzinfo=UTC),
    datetime(2026, 3, 1, 10, tzinfo=UTC),
)
SLA_HOURS = (0, 4, 24, 48)


# When a moving centre moved: its transactions submitted from then on are made in its new place.
MOVED_AT = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Centre:
    center_id: str
    governorate_code: str
    wilayat_code: str
    omani_staff: int
    # The wilayat it moved to at MOVED_AT (the registry learns of it now).
    moved_to: str | None = None

    def place_at(self, moment: datetime) -> tuple[str, str]:
        """(governorate, wilayat) of a transaction submitted at that moment."""
        wilayat = self.moved_to if self.moved_to and moment >= MOVED_AT else self.wilayat_code
        return wilayat.split("-")[0], wilayat


@dataclass
class Transaction:
    """One transaction's whole life, as its events tell it."""

    transaction_id: str
    centre: Centre
    sla_hours: int
    fee_baisa: int
    submit_time: datetime
    # (status, time) after RECORDED, in order.
    steps: list[tuple[Status, datetime]] = field(default_factory=list)
    rating: int = 0
    rating_time: datetime | None = None
    # Loaded through the batch queue as history (rated when it finished), not published live.
    migrated: bool = False

    @property
    def place(self) -> tuple[str, str]:
        """Where it was made: its centre's place when it was submitted."""
        return self.centre.place_at(self.submit_time)

    @property
    def status(self) -> Status:
        return self.steps[-1][0] if self.steps else Status.RECORDED

    @property
    def finish_time(self) -> datetime | None:
        return self.steps[-1][1] if self.status in FINISHED else None

    @property
    def elapsed_seconds(self) -> int:
        """The running SLA clock at the finish, worked out afresh from the times as stored
        (MongoDB keeps milliseconds): whole seconds, rounded up."""
        assert self.finish_time is not None
        paused = timedelta(0)
        for (status, at), (_, until) in zip(self.steps, self.steps[1:], strict=False):
            if status in PAUSED:
                paused += as_stored(until) - as_stored(at)
        running = as_stored(self.finish_time) - as_stored(self.submit_time) - paused
        return math.ceil(running / timedelta(microseconds=1) / 1_000_000)

    @property
    def within_sla(self) -> bool:
        return self.sla_hours == 0 or self.elapsed_seconds <= self.sla_hours * HOUR


def as_stored(moment: datetime) -> datetime:
    """A time as MongoDB keeps it: to the millisecond, the rest cut off."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _gap(rng: random.Random) -> timedelta:
    """From a few seconds to a few days, fractions of a second included."""
    scale = rng.choice((60, 3600, 6 * 3600, 30 * 3600, 3 * 86400))
    return timedelta(seconds=rng.uniform(1, scale))


def path_of(rng: random.Random) -> list[Status]:
    """The statuses after RECORDED: open, completed, rejected or cancelled, with pauses."""
    ending = rng.choice(("open", "done", "done", "done", "rejected", "cancelled", "cancel-now"))
    if ending == "cancel-now":
        return [Status.CANCELLED]
    path: list[Status] = []
    if rng.random() < 0.8:
        path.append(Status.IN_PROGRESS)
    for _ in range(rng.choice((0, 0, 1, 2))):
        path += [rng.choice(sorted(PAUSED)), Status.IN_PROGRESS]
    if ending == "open":
        if rng.random() < 0.5:
            path.append(rng.choice(sorted(PAUSED)))
        return path
    if ending in ("rejected", "cancelled") and rng.random() < 0.4:
        path.append(rng.choice(sorted(PAUSED)))  # rejected or cancelled while paused
    final = {"done": Status.COMPLETED, "rejected": Status.REJECTED}
    path.append(final.get(ending, Status.CANCELLED))
    return path


def _at_the_sla(rng: random.Random, tx: Transaction) -> datetime | None:
    """Move its completion to within a millisecond or so of its SLA, pauses counted; None
    when that falls before the step it follows."""
    paused = timedelta(0)
    for (status, at), (_, until) in zip(tx.steps, tx.steps[1:], strict=False):
        if status in PAUSED:
            paused += until - at
    near = rng.choice((-1000, -999, -400, 0, 1, 300, 999, 1000, 1_000_000))
    finish = tx.submit_time + timedelta(hours=tx.sla_hours, microseconds=near) + paused
    if len(tx.steps) > 1 and finish <= tx.steps[-2][1]:
        return None
    tx.steps[-1] = (Status.COMPLETED, finish)
    return finish


def transactions(rng: random.Random, centres: list[Centre], count: int) -> list[Transaction]:
    """count transactions of the centres, started near ANCHORS, none after now."""
    now = datetime.now(UTC)
    made = []
    for _ in range(count):
        at = rng.choice(ANCHORS) + timedelta(seconds=rng.uniform(0, 4 * 3600))
        made.append(
            Transaction(
                transaction_id=f"T-{uuid.uuid4().hex[:12]}",
                centre=rng.choice(centres),
                sla_hours=rng.choice(SLA_HOURS),
                fee_baisa=rng.choice((0, 500, 2000, 5000, 12_345)),
                submit_time=at,
            )
        )
        tx = made[-1]
        moment = at
        for status in path_of(rng):
            moment += _gap(rng)
            tx.steps.append((status, moment))
        if tx.status is Status.COMPLETED and tx.sla_hours and rng.random() < 0.3:
            moment = _at_the_sla(rng, tx) or moment
        tx.migrated = rng.random() < 0.2
        if tx.status is Status.COMPLETED and rng.random() < 0.6:
            tx.rating = rng.randint(1, 5)
            tx.rating_time = moment if tx.migrated else moment + _gap(rng)
        latest = tx.rating_time or moment
        assert latest < now, "the scenario's anchors must stay in the past"
    return made


def counted_days(start: datetime | None, end: datetime | None) -> tuple[date, date]:
    """The UTC days [first, last) a period touches: a day partly inside counts whole."""
    first = start.date() if start else date.min
    if end is None:
        return first, date.max
    midnight = end == datetime(end.year, end.month, end.day, tzinfo=UTC)
    return first, end.date() if midnight else end.date() + timedelta(days=1)


def stats(chosen: list[Transaction], first: date, last: date) -> dict[str, float]:
    """The Stats of the transactions over the days [first, last), by brute force."""

    def inside(moment: datetime | None) -> bool:
        return moment is not None and first <= moment.date() < last

    submitted = [t for t in chosen if inside(t.submit_time)]
    finished = [t for t in chosen if inside(t.finish_time)]
    completed = [t for t in finished if t.status is Status.COMPLETED]
    refunded = [t for t in finished if t.status in REFUNDABLE]
    rated = [t for t in chosen if t.rating and inside(t.rating_time)]
    return {
        "submitted": len(submitted),
        "recorded": len(submitted),
        "completed": len(completed),
        "rejected": sum(t.status is Status.REJECTED for t in finished),
        "cancelled": sum(t.status is Status.CANCELLED for t in finished),
        "fees_baisa": sum(t.fee_baisa for t in submitted),
        "refunds_due_baisa": sum(t.fee_baisa for t in refunded),
        "completed_within_sla": sum(t.within_sla for t in completed),
        "mean_completion_seconds": (
            sum(t.elapsed_seconds for t in completed) / len(completed) if completed else 0.0
        ),
        "ratings": len(rated),
        "mean_rating": sum(t.rating for t in rated) / len(rated) if rated else 0.0,
    }
