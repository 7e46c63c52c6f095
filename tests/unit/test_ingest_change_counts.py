"""Each change the ingest worker handles is counted by what became of it; acked unless refused."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from sanad.amqp.verdicts import Dead, Retry
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2
from workers.ingest.changes import Applied
from workers.ingest.handlers import RATED_TYPE, STATUS_CHANGED_TYPE, IngestHandler

OUTCOMES = ("applied", "duplicate", "superseded", "dead", "retry")


@dataclass
class FakeMessage:
    body: bytes
    type: str | None = STATUS_CHANGED_TYPE


@dataclass
class ScriptedStore:
    """Answers each change with the next outcome of its script, as IngestStore would."""

    script: list[Applied | Dead | Retry]
    changes: list[object] = field(default_factory=list)

    async def record(
        self,
        documents: Sequence[dict[str, object]],
        changes: Sequence[object],
        audits: Mapping[str, dict[str, object]] | None = None,
    ) -> list[Applied | Dead | Retry]:
        self.changes.extend(changes)
        return [self.script.pop(0) for _ in changes]


def status_changed(change_id: str, hour: int) -> FakeMessage:
    event = events_pb2.TransactionStatusChanged(
        transaction_id="T1",
        change_id=change_id,
        status=common_pb2.TRANSACTION_STATUS_IN_PROGRESS,
        time=to_timestamp(datetime(2024, 5, 1, hour, tzinfo=UTC)),
        actor="ROP",
    )
    return FakeMessage(event.SerializeToString())


def rated() -> FakeMessage:
    event = events_pb2.TransactionRated(
        transaction_id="T1", rating=5, time=to_timestamp(datetime(2024, 5, 2, tzinfo=UTC))
    )
    return FakeMessage(event.SerializeToString(), RATED_TYPE)


def counts(kind: str) -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(
            "sanad_worker_changes_total", {"kind": kind, "outcome": outcome}
        )
        or 0.0
        for outcome in OUTCOMES
    }


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in OUTCOMES if after[k] != before[k]}


async def test_a_superseded_status_change_counts_as_superseded_not_applied_and_is_acked() -> None:
    dead = Dead("illegal-status-change", "cannot go back")
    parked = Retry("unknown-transaction", "not stored")
    store = ScriptedStore([Applied.APPLIED, Applied.SUPERSEDED, dead, parked])
    batch = [status_changed(f"c{n}", 12 - n) for n in range(4)]
    before = counts("status")

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert outcomes == [None, None, dead, parked]
    assert grown(before, counts("status")) == {
        "applied": 1.0,
        "superseded": 1.0,
        "dead": 1.0,
        "retry": 1.0,
    }


async def test_a_repeat_of_a_handled_change_counts_as_duplicate_and_is_acked() -> None:
    store = ScriptedStore([Applied.DUPLICATE, Applied.DUPLICATE])
    before_status, before_rating = counts("status"), counts("rating")

    outcomes = await IngestHandler(store)([status_changed("c1", 10), rated()])  # type: ignore[list-item]

    assert outcomes == [None, None]
    assert grown(before_status, counts("status")) == {"duplicate": 1.0}
    assert grown(before_rating, counts("rating")) == {"duplicate": 1.0}


def test_every_kind_and_outcome_is_counted_from_zero_before_any_change() -> None:
    IngestHandler(ScriptedStore([]))  # type: ignore[arg-type]

    for kind in ("status", "rating"):
        for outcome in OUTCOMES:
            assert (
                REGISTRY.get_sample_value(
                    "sanad_worker_changes_total", {"kind": kind, "outcome": outcome}
                )
                is not None
            ), (kind, outcome)
