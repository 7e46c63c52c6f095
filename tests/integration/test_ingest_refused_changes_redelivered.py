"""A numbered status change illegal for the stored state is dead-lettered however often it is
handled (DESIGN §5.4): a redelivery after its micro-batch committed but before the dead letter
was confirmed, or the micro-batch handled again after an unknown commit result, finds the
refusal the first handling stored with the change's place in the sequence."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.verdicts import Dead
from sanad.records import Document, document_from_submitted
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2
from tests.integration.workers_support import submitted
from workers.ingest.handlers import STATUS_CHANGED_TYPE, IngestHandler
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration
AT = datetime(2024, 5, 1, 9, tzinfo=UTC)


@dataclass
class Delivery:
    body: bytes
    type: str = STATUS_CHANGED_TYPE


@pytest.fixture
async def store(mongo_url: str, database_name: str) -> AsyncIterator[IngestStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    store = IngestStore(client, client[database_name])
    await store.record([document_from_submitted(submitted("T1", "C1", "S", AT), AT)], [])
    yield store
    await client.close()


def change(sequence: int, status: int) -> Delivery:
    event = events_pb2.TransactionStatusChanged(
        transaction_id="T1",
        change_id=f"c{sequence}",
        status=status,
        time=to_timestamp(AT + timedelta(hours=sequence)),
        actor="ROP",
        sequence=sequence,
    )
    return Delivery(event.SerializeToString())


async def test_an_illegal_numbered_change_handled_again_is_dead_lettered_again(
    store: IngestStore,
) -> None:
    handler = IngestHandler(store)
    completed = change(1, common_pb2.TRANSACTION_STATUS_COMPLETED)
    illegal = change(2, common_pb2.TRANSACTION_STATUS_IN_PROGRESS)
    assert await handler([completed]) == [None]  # type: ignore[list-item]

    first = await handler([illegal])  # type: ignore[list-item]
    again = await handler([illegal])  # type: ignore[list-item]

    assert isinstance(first[0], Dead)
    assert first[0].reason == "illegal-status-change"
    assert again == first  # the same reason and detail, not acked as a duplicate
    stored = await store.transactions.find_one({"_id": "T1"})
    assert stored is not None
    assert (stored["status"], stored["sequence"]) == ("COMPLETED", 2)


async def test_refused_numbered_changes_stay_refused_within_and_across_micro_batches(
    store: IngestStore,
) -> None:
    handler = IngestHandler(store)
    cancelled = change(1, common_pb2.TRANSACTION_STATUS_CANCELLED)
    illegal = change(2, common_pb2.TRANSACTION_STATUS_IN_PROGRESS)
    also_illegal = change(3, common_pb2.TRANSACTION_STATUS_COMPLETED)

    outcomes = await handler([cancelled, illegal, also_illegal, illegal])  # type: ignore[list-item]
    repeated = await handler([also_illegal, cancelled])  # type: ignore[list-item]

    assert outcomes[0] is None
    assert [type(o) for o in outcomes[1:]] == [Dead, Dead, Dead]
    assert outcomes[3] == outcomes[1]
    assert repeated == [outcomes[2], None]
