"""The workers' submission store (through IngestStore, which adds the indexes) against the real
MongoDB-wire server: new documents stored and counted once."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient, monitoring

from sanad.amqp.verdicts import TransientError
from sanad.records import LISTING_INDEX, Document, document_from_submitted
from sanad.security.audit import AuditEvent, document_of
from tests.integration.workers_support import submitted
from workers.ingest.store import IngestStore
from workers.storage import submissions

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(mongo_url: str, database_name: str) -> AsyncIterator[IngestStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    store = IngestStore(client, client[database_name])
    await store.ensure_indexes()
    yield store
    await client.close()


def documents(center_id: str, count: int) -> list[Document]:
    now = datetime.now(UTC)
    return [
        document_from_submitted(submitted(f"tx-{uuid.uuid4().hex}", center_id, "ROP-VISA"), now)
        for _ in range(count)
    ]


async def submitted_count(store: IngestStore, center_id: str) -> int:
    total = 0
    async for rollup in store.rollups.find({"center_id": center_id}):
        total += int(rollup.get("submitted", 0))
    return total


async def test_a_micro_batch_with_some_ids_already_stored_stores_and_counts_only_the_new_ones(
    store: IngestStore,
) -> None:
    center = f"C-{uuid.uuid4().hex[:8]}"
    first = documents(center, 150)
    assert await store.record_submissions(first) == 150

    later = documents(center, 120)
    new = await store.record_submissions([*first[::3], *later, *first[1::3]])

    assert new == 120
    assert await store.transactions.count_documents({"center_id": center}) == 270
    assert await submitted_count(store, center) == 270


class TransactionReads(monitoring.CommandListener):
    """Counts the reads of `transactions` a client sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "transactions":
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class StillClock:
    """The store's `time`: a monotonic clock that stands still until the test moves it, so
    which calls fall inside the read window does not depend on how fast they run."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_new_documents_go_straight_in_and_inserts_read_first_only_after_a_stored_id(
    mongo_url: str, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = TransactionReads()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[reads]
    )
    clock = StillClock()
    monkeypatch.setattr(submissions, "time", clock)
    store = IngestStore(client, client[database_name], read_window_s=0.5)
    center = f"C-{uuid.uuid4().hex[:8]}"
    first, again = documents(center, 50), documents(center, 30)
    soon, later = documents(center, 20), documents(center, 40)
    try:
        assert await store.record_submissions(first) == 50
        assert reads.count == 0

        # Redelivered with new ones: the straight insert fails, the retry reads and stores.
        assert await store.record_submissions([*first[:10], *again]) == 30
        assert reads.count == 1
        # Redeliveries come in bursts: for a while, inserts read first.
        assert await store.record_submissions(soon) == 20
        assert reads.count == 2

        clock.now += 0.6  # past the read window
        assert await store.record_submissions(later) == 40
        assert reads.count == 2
        assert await store.transactions.count_documents({"center_id": center}) == 140
        assert await submitted_count(store, center) == 140
    finally:
        await client.close()


async def test_a_micro_batch_carrying_one_id_twice_stores_it_once_and_counts_it_once(
    store: IngestStore,
) -> None:
    center = f"C-{uuid.uuid4().hex[:8]}"
    batch = documents(center, 3)
    twice = {**batch[1], "request_id": "second copy"}

    assert await store.record_submissions([*batch, twice]) == 3
    stored = await store.transactions.find_one({"_id": batch[1]["_id"]})
    assert stored is not None
    assert stored["request_id"] == batch[1]["request_id"]
    assert await submitted_count(store, center) == 3


async def test_two_writers_storing_the_same_documents_at_once_count_each_once(
    store: IngestStore,
) -> None:
    center = f"C-{uuid.uuid4().hex[:8]}"
    batch = documents(center, 400)
    other = IngestStore(store.client, store.transactions.database)

    news = await asyncio.gather(
        store.record_submissions(batch), other.record_submissions(list(reversed(batch)))
    )

    assert sum(news) == 400
    assert await store.transactions.count_documents({"center_id": center}) == 400
    assert await submitted_count(store, center) == 400


async def test_the_worker_creates_the_one_listing_index(store: IngestStore) -> None:
    indexes = await store.transactions.index_information()
    assert sorted(spec["key"] for spec in indexes.values()) == sorted([[("_id", 1)], LISTING_INDEX])


def accepted(transaction_id: str) -> Document:
    event = AuditEvent(
        time=datetime.now(UTC),
        subject="centre-c1",
        role="centre",
        agency_code="",
        center_id="C1",
        rpc="/sanad.v1.IntakeService/SubmitTransaction",
        target={"transaction_id": transaction_id},
        outcome="OK",
        request_id="req-1",
        recorded_by="intake",
    )
    return document_of(event)


async def test_a_carried_audit_event_is_stored_once_even_when_its_transaction_was_stored_first(
    store: IngestStore,
) -> None:
    # A replay of the same request id (its own event written by intake) may store the
    # transaction from a message that carries no event before the fresh call's message, which
    # carries the fresh call's event: that event is still written, and a redelivery adds none.
    center = f"C-{uuid.uuid4().hex[:8]}"
    old, new = documents(center, 2)
    await store.record([old], [])
    audits = {doc["_id"]: accepted(doc["_id"]) for doc in (old, new)}

    await store.record([old, new], [], audits)
    await store.record([old, new], [], audits)  # a redelivery of both
    await store.record([old], [], audits)  # and of the first alone, read first

    ids = [audits[old["_id"]]["_id"], audits[new["_id"]]["_id"]]
    stored = await store.audit_log.find({"_id": {"$in": ids}}).to_list()
    assert sorted(event["_id"] for event in stored) == sorted(ids)
    assert {event["_id"]: event["target_values"] for event in stored} == {
        audits[doc["_id"]]["_id"]: [doc["_id"]] for doc in (old, new)
    }
    # Whole, as carried (times are kept to the millisecond).
    assert [{**event, "time": None} for event in sorted(stored, key=lambda e: e["_id"])] == [
        {**audits[key], "time": None} for key in sorted(audits, key=lambda k: audits[k]["_id"])
    ]
    assert await store.transactions.count_documents({"center_id": center}) == 2


async def test_a_request_id_recorded_meanwhile_stores_nothing_of_its_submissions(
    store: IngestStore,
) -> None:
    # The batch worker records its items' request ids with them: a record another batch wrote
    # first makes the whole unit fail as transient (its next attempt reads that record).
    center = f"C-{uuid.uuid4().hex[:8]}"
    first, second = documents(center, 2)
    key = f"key-{uuid.uuid4().hex}"
    await store.record_submissions([first], [{"_id": key, "transaction_id": first["_id"]}])

    with pytest.raises(TransientError, match="recorded meanwhile"):
        await store.record_submissions([second], [{"_id": key, "transaction_id": second["_id"]}])

    assert await store.transactions.count_documents({"center_id": center}) == 1
    assert await submitted_count(store, center) == 1
    assert await store.requests.find_one({"_id": key}) == {
        "_id": key,
        "transaction_id": first["_id"],
    }
