"""A ListTransactions page stops before its reply would pass the server's gRPC message limit and
hands out a token that continues right after the last transaction sent, so paging always
proceeds however long the transactions' histories are. Intake here has a 64 KiB limit, so a few
transactions with long notes fill it. The transactions are written directly, as the ingest
worker writes them; through the real servicer against the real MongoDB-wire server."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.v1 import intake_pb2, intake_pb2_grpc
from services.intake.tracking import MAX_NOTE_LENGTH
from tests.integration.conftest import served_intake
from tests.integration.test_intake_tracking import HOUR, T0, document

pytestmark = pytest.mark.integration
LIMIT = 64 * 1024


@pytest.fixture(name="small")
async def small_fixture(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> AsyncIterator[intake_pb2_grpc.IntakeServiceStub]:
    """Intake served with a 64 KiB message limit (and the registry it follows)."""
    served = served_intake(
        mongo_url, database_name, amqp_url, amqp_prefix, grpc_max_message_bytes=LIMIT
    )
    async with served as up, grpc.aio.insecure_channel(f"127.0.0.1:{up.intake_port}") as channel:
        yield intake_pb2_grpc.IntakeServiceStub(channel)


@pytest.fixture
async def transactions(mongo_url: str, database_name: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[database_name]["transactions"]
    await client.close()


async def test_transactions_too_large_for_one_reply_are_listed_over_pages_that_fit(
    small: intake_pb2_grpc.IntakeServiceStub, transactions: Any
) -> None:
    note = "د" * MAX_NOTE_LENGTH  # 2,000 bytes: a transaction is about 10 KB
    # Two transactions a submit time, so a page also ends between two of the same time.
    docs = [document("C1", T0 + (n // 2) * HOUR) for n in range(30)]
    for doc in docs:
        step = {"status": "IN_PROGRESS", "time": doc["submit_time"], "actor": "a", "note": note}
        doc["history"] += [step] * 4
    await transactions.insert_many(docs)
    newest_first = [
        d["_id"] for d in sorted(docs, key=lambda d: (d["submit_time"], d["_id"]), reverse=True)
    ]

    listed: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await small.ListTransactions(
            intake_pb2.ListTransactionsRequest(center_id="C1", page_size=500, page_token=token),
            timeout=10,
        )
        assert reply.transactions, "every page makes progress"
        assert reply.ByteSize() <= LIMIT
        listed += [t.id for t in reply.transactions]
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert listed == newest_first  # each once, in order: every page went on after the last sent
    assert pages > 3
