"""A 10,000-row batch with 1% bad rows gets an exact answer per row; resending changes nothing."""

import signal
import time

import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import Topology
from sanad.cli.batch_file import chunks_of
from sanad.cli.batch_send import send, summarise
from tests.integration.conftest import Stack, open_centre_with_service
from tests.integration.workers_support import delete_retry_queues, start_batch_worker

pytestmark = pytest.mark.integration

ROWS = 10_000


def rows_for(service: str) -> tuple[list[dict[str, str]], set[int]]:
    rows, bad = [], set()
    for n in range(ROWS):
        fee = "5000"
        if n % 100 == 7:
            fee, _ = "4000", bad.add(n)
        rows.append(
            {
                "request_id": f"r-{n}",
                "service_code": service,
                "channel": "counter",
                "fee_baisa": fee,
                "civil_number": f"{90000000 + n}",
            }
        )
    return rows, bad


async def test_a_10000_row_batch_is_answered_per_row_and_a_resend_changes_nothing(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    rows, bad = rows_for(service)
    batches = chunks_of(rows, f"b-{time.time_ns()}", center_id, 5000)
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        first = await send(stack.amqp_url, stack.prefix, batches, wait_s=120)
        outcome = summarise(first, batches)
        assert outcome.accepted == ROWS - len(bad)
        assert {n for n, _ in outcome.rejected} == bad
        assert all("fee_baisa" in reason for _, reason in outcome.rejected)
        assert await db.transactions.count_documents({"center_id": center_id}) == ROWS - len(bad)
        again = await send(stack.amqp_url, stack.prefix, batches, wait_s=60)
        assert [r.SerializeToString() for r in again] == [r.SerializeToString() for r in first]
        assert await db.transactions.count_documents({"center_id": center_id}) == ROWS - len(bad)
        rollups = await db.rollups.find({"center_id": center_id}).to_list()
        assert sum(r["submitted"] for r in rollups) == ROWS - len(bad)
        stored = await db.transactions.find_one({"center_id": center_id})
        # Its row's civil number, whole: "90000" alone also matched a stored time's
        # microseconds (a time at .190 s), about one run in a hundred.
        civil_number = rows[int(stored["request_id"].removeprefix("r-"))]["civil_number"]
        assert civil_number not in repr(stored)
        assert await stack.queue_depth(Topology(stack.prefix).batch_queue) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await client.close()
        await delete_retry_queues(stack)
