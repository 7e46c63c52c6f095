"""Migrated transaction histories as HistoricalTransaction items; pure and deterministic.

Every generated transaction starts and finishes inside its year, so the year's completed count
is exactly the planned one however the workers assign days (submission day or finishing day).
"""

import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from sanad.seed.catalogue import SERVICES
from sanad.seed.centres import SeedCentre
from sanad.v1 import common_pb2, events_pb2, intake_pb2

HOUR = 3600
CANCELLED_SHARE = 0.01
RATED_SHARE = 0.35
PAUSED_SHARE = 0.15
Status = common_pb2.TransactionStatus


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _change(status: "common_pb2.TransactionStatus", moment: datetime) -> intake_pb2.StatusChange:
    return intake_pb2.StatusChange(status=status, time=_stamp(moment), actor="seed-migration")


def _running_seconds(rng: random.Random, sla_hours: int, speed: float) -> int:
    """Running SLA-clock time: log-normal around a third of the SLA times the centre's speed."""
    return max(600, int(sla_hours * HOUR * speed * rng.lognormvariate(-1.0, 0.8)))


def _history(
    rng: random.Random,
    submit: datetime,
    running: int,
    pause: int,
    final: "common_pb2.TransactionStatus",
) -> list[intake_pb2.StatusChange]:
    started = submit + timedelta(seconds=running // 5)
    changes = [_change(Status.TRANSACTION_STATUS_IN_PROGRESS, started)]
    if pause:
        waiting = started + timedelta(seconds=running // 5)
        changes.append(_change(Status.TRANSACTION_STATUS_AWAITING_DOCUMENTS, waiting))
        changes.append(
            _change(Status.TRANSACTION_STATUS_IN_PROGRESS, waiting + timedelta(seconds=pause))
        )
    changes.append(_change(final, submit + timedelta(seconds=running + pause)))
    return changes


def _rating(rng: random.Random, mean: float) -> int:
    if rng.random() >= RATED_SHARE:
        return 0
    return max(1, min(5, round(rng.gauss(mean, 0.6))))


def transactions(
    centre: SeedCentre,
    year: int,
    completed: int,
    seed: int,
    fees: Mapping[str, int],
    *,
    dataset: str = "",
) -> Iterator[events_pb2.HistoricalTransaction]:
    """The centre's migrated transactions of one year: `completed` completions plus rejections
    and cancellations in its profile's proportions.

    Request ids name the seed, the dataset (SeedPlan.dataset: empty at full scale) and the
    item's place in its centre-year.
    """
    rng = random.Random(f"history-{seed}-{centre.licence_number}-{year}")  # noqa: S311 - sample data
    profile = centre.profile
    finals = (
        [Status.TRANSACTION_STATUS_COMPLETED] * completed
        + [Status.TRANSACTION_STATUS_REJECTED] * _rejected(centre, completed)
        + [Status.TRANSACTION_STATUS_CANCELLED] * round(completed * CANCELLED_SHARE)
    )
    offered = [s for s in SERVICES if s.code in centre.service_codes]
    start = datetime(year, 1, 1, tzinfo=UTC)
    year_seconds = int((datetime(year + 1, 1, 1, tzinfo=UTC) - start).total_seconds())
    for n, final in enumerate(finals):
        service = rng.choices(offered, weights=[s.weight for s in offered])[0]
        running = _running_seconds(rng, service.sla_hours, profile.speed)
        pause = rng.randint(HOUR, 72 * HOUR) if rng.random() < PAUSED_SHARE else 0
        elapsed = running + pause
        submit = start + timedelta(seconds=rng.randint(0, year_seconds - elapsed - HOUR))
        done = final == Status.TRANSACTION_STATUS_COMPLETED
        yield events_pb2.HistoricalTransaction(
            transaction=intake_pb2.SubmitTransactionRequest(
                request_id=f"seed-{seed}{dataset}-{centre.licence_number}-{year}-{n:05d}",
                center_id="",  # filled in by the loader once the registry assigned the id
                service_code=service.code,
                channel=common_pb2.CHANNEL_COUNTER
                if rng.random() < 0.7
                else common_pb2.CHANNEL_MOBILE,
                fee_baisa=fees.get(service.code, service.fee_baisa),
                beneficiary_civil_number=str(rng.randint(10_000_000, 99_999_999)),
            ),
            submit_time=_stamp(submit),
            history=_history(rng, submit, running, pause, final),
            rating=_rating(rng, profile.mean_rating) if done else 0,
        )


def item_count(centre: SeedCentre, completed: int) -> int:
    """How many items transactions() yields for a year with `completed` completions."""
    return completed + _rejected(centre, completed) + round(completed * CANCELLED_SHARE)


def _rejected(centre: SeedCentre, completed: int) -> int:
    rate = centre.profile.rejection_rate
    return round(completed * rate / (1 - rate))


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split total into integers proportional to weights, summing exactly (largest remainder)."""
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [int(share) for share in shares]
    order = sorted(range(len(weights)), key=lambda i: -(shares[i] - counts[i]))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts
