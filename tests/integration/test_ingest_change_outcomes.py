"""The ingest store and handler against the real MongoDB-wire server: every change is counted by
what became of it, and a superseded or repeated change is acked without counting as applied."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from sanad.domain.transactions import Status
from sanad.records import Document, document_from_submitted
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2
from tests.integration.workers_support import submitted
from workers.ingest.changes import Applied, StatusChange
from workers.ingest.handlers import STATUS_CHANGED_TYPE, IngestHandler
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration

SUBMITTED_AT = datetime(2024, 5, 1, 9, tzinfo=UTC)
OUTCOMES = ("applied", "duplicate", "superseded", "dead", "retry")


@dataclass
class Delivery:
    body: bytes
    type: str = STATUS_CHANGED_TYPE


@pytest.fixture
async def store(mongo_url: str, database_name: str) -> AsyncIterator[IngestStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    store = IngestStore(client, client[database_name])
    event = submitted("T1", "C1", "S", SUBMITTED_AT)
    await store.record([document_from_submitted(event, SUBMITTED_AT)], [])
    yield store
    await client.close()


def status_changed(change_id: str, status: int, hours: int) -> Delivery:
    event = events_pb2.TransactionStatusChanged(
        transaction_id="T1",
        change_id=change_id,
        status=status,
        time=to_timestamp(SUBMITTED_AT + timedelta(hours=hours)),
        actor="ROP",
    )
    return Delivery(event.SerializeToString())


def status_counts() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(
            "sanad_worker_changes_total", {"kind": "status", "outcome": outcome}
        )
        or 0.0
        for outcome in OUTCOMES
    }


async def test_the_store_names_a_late_unnumbered_change_superseded_and_a_repeat_duplicate(
    store: IngestStore,
) -> None:
    newer = StatusChange(
        "T1", "new", Status.IN_PROGRESS, SUBMITTED_AT + timedelta(hours=10), "", ""
    )
    older = StatusChange(
        "T1", "late", Status.AWAITING_DOCUMENTS, newer.time - timedelta(hours=1), "", ""
    )

    assert await store.record([], [newer]) == [Applied.APPLIED]
    assert await store.record([], [older, newer]) == [
        Applied.SUPERSEDED,
        Applied.DUPLICATE,
    ]
    stored = await store.transactions.find_one({"_id": "T1"})
    assert stored is not None
    assert stored["status"] == "IN_PROGRESS"
    assert stored["applied_changes"] == ["new"]


async def test_superseded_and_repeated_changes_are_acked_and_not_counted_as_applied(
    store: IngestStore,
) -> None:
    handler = IngestHandler(store)
    newer = status_changed("new", common_pb2.TRANSACTION_STATUS_IN_PROGRESS, 10)
    older = status_changed("late", common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS, 9)
    before = status_counts()

    assert await handler([newer]) == [None]  # type: ignore[list-item]
    assert await handler([older, newer]) == [None, None]  # type: ignore[list-item]

    after = status_counts()
    grown = {k: after[k] - before[k] for k in OUTCOMES if after[k] != before[k]}
    assert grown == {"applied": 1.0, "superseded": 1.0, "duplicate": 1.0}
