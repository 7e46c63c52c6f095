"""Status changes in the order intake accepted them: judged against the latest accepted change,
numbered, and applied by the worker in that order whatever order the queue delivers them in."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.topology import STATUS_CHANGED, SUBMITTED, Topology
from sanad.records import SUBMITTED_TYPE
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.integration.conftest import Stack, eventually
from tests.integration.test_intake_tracking import T0, code_of, document
from tests.integration.workers_support import (
    STATUS_CHANGED_TYPE,
    delete_retry_queues,
    publish,
    start_ingest_worker,
    submitted,
)

pytestmark = pytest.mark.integration

S = common_pb2.TransactionStatus


@pytest.fixture
async def db(stack: Stack, mongo_url: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[stack.env["SANAD_MONGO_DATABASE"]]
    await client.close()
    await delete_retry_queues(stack)


def numbered(tx: str, sequence: int, value: int, at: datetime) -> tuple[str, bytes, str]:
    event = events_pb2.TransactionStatusChanged(
        transaction_id=tx,
        change_id=f"{tx}-{sequence}",
        status=value,
        time=to_timestamp(at),
        actor="ROP",
        sequence=sequence,
    )
    return (STATUS_CHANGED, event.SerializeToString(), STATUS_CHANGED_TYPE)


async def no_dead_letters(stack: Stack) -> int:
    return await stack.queue_depth(Topology(stack.prefix).dead_queue(f"{stack.prefix}.ingest"))


async def test_numbered_changes_apply_in_sequence_when_delivered_out_of_order(
    stack: Stack, db: Any
) -> None:
    topology = Topology(stack.prefix)
    base = datetime.now(UTC).replace(microsecond=0)
    center = f"C-{uuid.uuid4().hex[:6]}"
    in_order, reversed_ = uuid.uuid4().hex, uuid.uuid4().hex
    events = [
        (SUBMITTED, submitted(tx, center, "ROP-VISA", base).SerializeToString(), SUBMITTED_TYPE)
        for tx in (in_order, reversed_)
    ]
    steps = [
        (1, S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, base + timedelta(hours=1)),
        (2, S.TRANSACTION_STATUS_IN_PROGRESS, base + timedelta(hours=2)),
        (3, S.TRANSACTION_STATUS_COMPLETED, base + timedelta(hours=3)),
    ]
    events += [numbered(in_order, *step) for step in steps]
    events += [numbered(reversed_, *step) for step in reversed(steps)]
    await publish(stack.amqp_url, topology.transactions_exchange, events)
    worker = start_ingest_worker(stack, SANAD_INGEST_RETRY_DELAY_MS="200")
    try:

        async def both_completed() -> bool:
            found = await db.transactions.find({"status": "COMPLETED"}).to_list()
            return len(found) == 2

        await eventually(both_completed, within_s=30)
        for tx in (in_order, reversed_):
            doc = await db.transactions.find_one({"_id": tx})
            assert [s["status"] for s in doc["history"]] == [
                "SUBMITTED",
                "RECORDED",
                "AWAITING_DOCUMENTS",
                "IN_PROGRESS",
                "COMPLETED",
            ], tx
            times = [s["time"] for s in doc["history"]]
            assert times == sorted(times), tx
            assert doc["sequence"] == 3
            assert doc["paused_seconds"] == 3600  # the SLA clock paused one hour, not forever
        rollups = await db.rollups.find({"center_id": center}).to_list()
        assert sum(r.get("completed", 0) for r in rollups) == 2
        assert await no_dead_letters(stack) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


async def test_each_change_is_judged_against_the_latest_accepted_one_and_none_is_lost(
    stack: Stack, db: Any
) -> None:
    doc = document("C1", T0, governorate_code="DA", wilayat_code="DA-NIZ")
    await db.transactions.insert_one(doc)

    def update(status: int) -> Any:
        return stack.intake.UpdateTransactionStatus(
            intake_pb2.UpdateTransactionStatusRequest(id=doc["_id"], status=status), timeout=10
        )

    # Sent one after the other before the worker stored any: the stored document still says
    # RECORDED, and only the latest accepted change says the transaction awaits documents.
    assert await code_of(update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS)) == grpc.StatusCode.OK
    refused = await code_of(update(S.TRANSACTION_STATUS_COMPLETED))
    assert refused == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(update(S.TRANSACTION_STATUS_IN_PROGRESS)) == grpc.StatusCode.OK
    assert await code_of(update(S.TRANSACTION_STATUS_COMPLETED)) == grpc.StatusCode.OK
    worker = start_ingest_worker(stack, SANAD_INGEST_RETRY_DELAY_MS="200")
    try:

        async def completed() -> bool:
            found = await db.transactions.find_one({"_id": doc["_id"]})
            return bool(found["status"] == "COMPLETED")

        await eventually(completed, within_s=30)
        stored = await db.transactions.find_one({"_id": doc["_id"]})
        assert [s["status"] for s in stored["history"]][2:] == [
            "AWAITING_DOCUMENTS",
            "IN_PROGRESS",
            "COMPLETED",
        ]
        assert stored["sequence"] == 3
        assert await no_dead_letters(stack) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


async def test_a_change_waits_as_long_as_a_stalled_worker_may_hold_the_one_before_it(
    stack: Stack, db: Any
) -> None:
    # Change 1 sits unacked with a consumer that stalls (a paused worker whose connection the
    # broker keeps until its heartbeat times out); change 2 reaches the real worker and waits.
    # Ten retries of 200 ms (the old budget) gave up on it well before the stall ended.
    doc = document("C1", T0, governorate_code="DA", wilayat_code="DA-NIZ")
    await db.transactions.insert_one(doc)
    tx = doc["_id"]
    first = numbered(tx, 1, S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, T0 + timedelta(hours=1))
    second = numbered(tx, 2, S.TRANSACTION_STATUS_IN_PROGRESS, T0 + timedelta(hours=2))
    topology = Topology(stack.prefix)
    stalled = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await stalled.channel()
        queue = await channel.get_queue(topology.ingest_queue)
        await publish(stack.amqp_url, topology.transactions_exchange, [first])
        held = None
        while held is None:
            held = await queue.get(no_ack=False, fail=False)
        await publish(stack.amqp_url, topology.transactions_exchange, [second])
        worker = start_ingest_worker(stack, SANAD_INGEST_RETRY_DELAY_MS="200")
        try:
            await asyncio.sleep(6)  # the stall: thirty and more round trips of change 2
            assert await no_dead_letters(stack) == 0
            await stalled.close()  # the broker returns change 1 to the queue
            stalled = None

            async def both_applied() -> bool:
                found = await db.transactions.find_one({"_id": tx})
                return bool(found.get("sequence") == 2)

            await eventually(both_applied, within_s=30)
            assert await no_dead_letters(stack) == 0
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
    finally:
        if stalled is not None:
            await stalled.close()
