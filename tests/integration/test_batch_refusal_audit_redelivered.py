"""A batch refused as a whole is audited once however often it is redelivered, also when its
message carries no correlation id (its stored event then has no `target.correlation_id`)."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.verdicts import Dead
from sanad.security.audit import document_of
from sanad.v1 import events_pb2
from workers.batch import audit
from workers.batch.store import BatchStore
from workers.storage.submissions import SubmissionStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[AsyncDatabase]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[database_name]
    await client.close()


def refusal_event(batch_id: str, correlation_id: str | None) -> dict[str, object]:
    message = SimpleNamespace(user_id="batch-C9", correlation_id=correlation_id, message_id=None)
    event = audit.refused(
        message,  # type: ignore[arg-type]
        events_pb2.BatchSubmission(batch_id=batch_id, center_id="C1"),
        datetime.now(UTC),
        Dead("not-allowed", "not allowed"),
    )
    return document_of(event)


@pytest.mark.parametrize("correlation_id", [None, ""])
async def test_a_redelivered_refusal_without_correlation_id_is_audited_once(
    db: AsyncDatabase, correlation_id: str | None
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"refused-{uuid.uuid4().hex}"

    await store.record_refusal(refusal_event(batch_id, correlation_id))
    await store.record_refusal(refusal_event(batch_id, correlation_id), redelivered=True)
    await store.record_refusal(refusal_event(batch_id, correlation_id), redelivered=True)

    events = [e async for e in db.audit_log.find({"request_id": batch_id})]
    assert len(events) == 1
    assert "correlation_id" not in events[0]["target"]  # stored events keep their form


async def test_a_redelivered_refusal_without_correlation_id_is_not_taken_for_one_with_it(
    db: AsyncDatabase,
) -> None:
    store = BatchStore(SubmissionStore(db.client, db), db)
    batch_id = f"refused-{uuid.uuid4().hex}"

    await store.record_refusal(refusal_event(batch_id, "c-1"))
    await store.record_refusal(refusal_event(batch_id, None), redelivered=True)  # another publish
    await store.record_refusal(refusal_event(batch_id, None), redelivered=True)  # and again
    await store.record_refusal(refusal_event(batch_id, "c-1"), redelivered=True)

    found = [
        e["target"].get("correlation_id", "")
        async for e in db.audit_log.find({"request_id": batch_id})
    ]
    assert sorted(found) == ["", "c-1"]
