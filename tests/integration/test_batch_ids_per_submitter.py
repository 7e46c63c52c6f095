"""A batch id is its submitter's: another user cannot take it first, and a record from before
records were kept per submitter keeps answering its own submitter."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from workers.batch.store import BatchStore, record_key
from workers.storage.submissions import SubmissionStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[AsyncDatabase]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[database_name]
    await client.close()


async def test_two_submitters_may_use_one_batch_id_each_for_its_own_batch(
    db: AsyncDatabase,
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"seed-1-DA-0001-2024-{uuid.uuid4().hex[:6]}"  # predictable, as seed's are
    now = datetime.now(UTC)

    squatter, squatted = await store.claim(batch_id, "batch-C9", "C9", now, "theirs")
    owner, fresh = await store.claim(batch_id, "migration", "C1", now, "ours")

    assert (squatted, fresh) == (True, True)
    assert owner["_id"] != squatter["_id"]
    assert (owner["submitted_by"], owner["fingerprint"]) == ("migration", "ours")
    assert await store.save_result(owner["_id"], b"ours", 1, 0, {"_id": uuid.uuid4().hex}) is None
    assert await store.saved_result(owner["_id"]) == b"ours"
    # Sent again, each finds its own record.
    again, fresh_again = await store.claim(batch_id, "migration", "C1", now, "ours")
    assert (again["_id"], fresh_again) == (owner["_id"], False)


async def test_a_record_from_before_per_submitter_ids_stays_its_submitters(
    db: AsyncDatabase,
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"old-{uuid.uuid4().hex}"
    started = datetime(2026, 11, 1, tzinfo=UTC)
    await db.batch_results.insert_one(
        {"_id": batch_id, "submitted_by": "migration", "center_id": "C1",
         "started_at": started, "fingerprint": "f", "result": b"old answer"}
    )  # fmt: skip

    record, fresh = await store.claim(batch_id, "migration", "C1", datetime.now(UTC), "f")
    # Its key stays the batch id, so its items' derived ids and its answer stay as they were.
    assert (record["_id"], fresh, bytes(record["result"])) == (batch_id, False, b"old answer")
    # Another user's batch under that id is a batch of its own, not the old record.
    other, other_fresh = await store.claim(batch_id, "batch-C9", "C9", datetime.now(UTC), "g")
    assert (other["_id"], other_fresh) == (record_key(batch_id, "batch-C9"), True)


async def test_a_submitters_own_record_wins_over_one_an_earlier_worker_made_later(
    db: AsyncDatabase,
) -> None:
    # During an upgrade an earlier worker, which knows only records keyed by the batch id, made
    # one for a batch this worker had claimed already: the batch keeps this worker's record.
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"upgrade-{uuid.uuid4().hex}"
    ours, _ = await store.claim(batch_id, "migration", "C1", datetime.now(UTC), "f")
    await db.batch_results.insert_one(
        {"_id": batch_id, "submitted_by": "migration", "center_id": "C1",
         "started_at": datetime.now(UTC), "fingerprint": "f"}
    )  # fmt: skip

    again, fresh = await store.claim(batch_id, "migration", "C1", datetime.now(UTC), "f")

    assert (again["_id"], fresh) == (ours["_id"], False)


async def test_two_workers_claiming_one_batch_at_once_share_the_first_claim(
    mongo_url: str, database_name: str
) -> None:
    # Each worker has its own connection, so the server serves both claims at once. Exactly one
    # creates the record; the other gets it as stored, so both derive the same item ids.
    clients: list[AsyncMongoClient] = [AsyncMongoClient(mongo_url, tz_aware=True) for _ in range(2)]
    stores = [BatchStore(SubmissionStore(c, c[database_name]), c[database_name]) for c in clients]
    try:
        for trial in range(20):
            batch_id = f"race-{trial}-{uuid.uuid4().hex[:6]}"
            claims = await asyncio.gather(
                *(
                    store.claim(batch_id, "batch-C1", "C1", datetime.now(UTC), "f")
                    for store in stores
                )
            )
            assert sorted(fresh for _, fresh in claims) == [False, True], trial
            started = {record["started_at"].replace(tzinfo=UTC) for record, _ in claims}
            assert len(started) == 1, trial
    finally:
        for client in clients:
            await client.close()
