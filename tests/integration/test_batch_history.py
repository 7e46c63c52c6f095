"""Migrated history through the batch queue: stored as it happened, counted on its own days."""

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from pymongo import AsyncMongoClient

from sanad import rollups as contract
from sanad.cli.batch_send import send
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2, intake_pb2, registry_pb2
from tests.integration.conftest import (
    COUNTER,
    Stack,
    open_centre_with_service,
    submit_request,
)
from tests.integration.workers_support import delete_retry_queues, start_batch_worker

pytestmark = pytest.mark.integration

HISTORY_ITEMS = 20_000
PER_BATCH = 5000


def history_item(
    service: str, n: int, submitted: datetime, rating: int = 4
) -> events_pb2.HistoricalTransaction:
    """Submitted, in progress 1 h later, awaiting documents 2 h, back 26 h, completed 30 h."""

    def step(status: int, hours: int) -> intake_pb2.StatusChange:
        return intake_pb2.StatusChange(
            status=status, time=to_timestamp(submitted + timedelta(hours=hours)), actor="agency"
        )

    return events_pb2.HistoricalTransaction(
        transaction=intake_pb2.SubmitTransactionRequest(
            request_id=f"h-{n}",
            service_code=service,
            channel=COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number=f"{70000000 + n}",
        ),
        submit_time=to_timestamp(submitted),
        history=[
            step(common_pb2.TRANSACTION_STATUS_IN_PROGRESS, 1),
            step(common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS, 2),
            step(common_pb2.TRANSACTION_STATUS_IN_PROGRESS, 26),
            step(common_pb2.TRANSACTION_STATUS_COMPLETED, 30),
        ],
        rating=rating,
    )


async def test_history_items_are_stored_as_they_happened_and_counted_on_their_days(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    submitted = datetime(2023, 12, 31, 20, 0, tzinfo=UTC)
    batch = events_pb2.BatchSubmission(
        batch_id=f"hist-{time.time_ns()}",
        center_id=center_id,
        history_items=[history_item(service, 0, submitted, rating=5)],
    )
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        [first] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=60)
        assert len(first.accepted) == 1, first
        stored = await db.transactions.find_one({"_id": first.accepted[0].transaction_id})
        assert stored is not None
        assert stored["status"] == "COMPLETED"
        assert stored["submit_time"] == submitted
        assert stored["finish_time"] == submitted + timedelta(hours=30)
        assert stored["paused_seconds"] == 24 * 3600
        assert stored["sla_elapsed_seconds"] == 6 * 3600
        assert stored["rating"] == 5
        on_submit_day = await db.rollups.find_one({"center_id": center_id, "day": "2023-12-31"})
        on_finish_day = await db.rollups.find_one({"center_id": center_id, "day": "2024-01-02"})
        assert on_submit_day is not None
        assert on_finish_day is not None
        assert on_submit_day[contract.SUBMITTED] == 1
        assert contract.COMPLETED not in on_submit_day
        assert on_finish_day[contract.COMPLETED] == 1
        assert on_finish_day[contract.COMPLETED_WITHIN_SLA] == 1
        assert on_finish_day[contract.COMPLETION_SECONDS_SUM] == 6 * 3600
        assert on_finish_day[contract.HISTOGRAM][contract.bucket_of(6 * 3600)] == 1
        assert on_finish_day[contract.RATINGS] == 1
        assert on_finish_day[contract.RATING_SUM] == 5
        [again] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=60)
        assert again.SerializeToString() == first.SerializeToString()
        assert await db.transactions.count_documents({"center_id": center_id}) == 1
        after = await db.rollups.find({"center_id": center_id}).to_list()
        assert sorted(r["_id"] for r in after) == sorted(
            [on_submit_day["_id"], on_finish_day["_id"]]
        )
        assert await db.rollups.find_one({"_id": on_finish_day["_id"]}) == on_finish_day
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await client.close()
        await delete_retry_queues(stack)


async def test_history_is_filed_where_its_centre_was_and_judged_by_its_services_terms_then(
    stack: Stack, mongo_url: str
) -> None:
    """A centre that moved after its history happened, and a service whose SLA shortened since:
    the history counts in the old wilayat, within the SLA of its day; a live item of the same
    batch where the centre is now, under today's SLA."""
    center_id, service = await open_centre_with_service(stack)  # DA-NIZ, 48 h
    await stack.registry.UpdateCenter(
        registry_pb2.UpdateCenterRequest(
            center=registry_pb2.Center(id=center_id, governorate_code="MA", wilayat_code="MA-SEB"),
            update_mask=FieldMask(paths=["governorate_code", "wilayat_code"]),
        )
    )
    await stack.registry.UpdateCatalogService(
        registry_pb2.UpdateCatalogServiceRequest(
            service=registry_pb2.CatalogService(code=service, sla_hours=1),
            update_mask=FieldMask(paths=["sla_hours"]),
        )
    )
    submitted = datetime(2024, 2, 29, 9, 0, tzinfo=UTC)
    batch = events_pb2.BatchSubmission(
        batch_id=f"moved-{time.time_ns()}",
        center_id=center_id,
        items=[submit_request(center_id, service, "live-1")],
        history_items=[history_item(service, 0, submitted)],
    )
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        [result] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=60)
        assert not result.rejected, result
        ids = {a.index: a.transaction_id for a in result.accepted}
        live = await db.transactions.find_one({"_id": ids[0]})
        history = await db.transactions.find_one({"_id": ids[1]})
        placed = ("governorate_code", "wilayat_code", "sla_hours", "service_version")
        assert live is not None
        assert history is not None
        assert [history[key] for key in placed] == ["DA", "DA-NIZ", 48, 1]
        assert [live[key] for key in placed] == ["MA", "MA-SEB", 1, 2]
        finished = await db.rollups.find_one({"center_id": center_id, "day": "2024-03-01"})
        assert finished is not None
        assert (finished["wilayat_code"], finished[contract.COMPLETED_WITHIN_SLA]) == ("DA-NIZ", 1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await client.close()
        await delete_retry_queues(stack)


async def test_20000_history_items_are_stored_and_counted_exactly(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    start = datetime(2023, 1, 1, 8, 0, tzinfo=UTC)
    items = [
        history_item(service, n, start + timedelta(minutes=50 * n)) for n in range(HISTORY_ITEMS)
    ]
    prefix = f"hist-{time.time_ns()}"
    batches = [
        events_pb2.BatchSubmission(
            batch_id=f"{prefix}/{n}", center_id=center_id, history_items=items[n : n + PER_BATCH]
        )
        for n in range(0, HISTORY_ITEMS, PER_BATCH)
    ]
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        began = time.perf_counter()
        results = await send(stack.amqp_url, stack.prefix, batches, wait_s=150)
        took = time.perf_counter() - began
        print(f"\n{HISTORY_ITEMS} history items stored in {took:.1f}s")
        assert sum(len(r.accepted) for r in results) == HISTORY_ITEMS
        assert not any(r.rejected for r in results)
        rollups = await db.rollups.find({"center_id": center_id}).to_list()
        assert sum(r.get(contract.SUBMITTED, 0) for r in rollups) == HISTORY_ITEMS
        assert sum(r.get(contract.COMPLETED, 0) for r in rollups) == HISTORY_ITEMS
        assert sum(r.get(contract.RATINGS, 0) for r in rollups) == HISTORY_ITEMS
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await client.close()
        await delete_retry_queues(stack)


async def test_a_migration_under_a_live_items_request_id_is_refused_not_answered_with_it(
    stack: Stack, mongo_url: str
) -> None:
    # Answered "accepted" with the live transaction before, its history and rating were lost.
    center_id, service = await open_centre_with_service(stack)
    migrated = history_item(service, 1, datetime(2024, 3, 1, 8, 0, tzinfo=UTC))
    live = events_pb2.BatchSubmission(
        batch_id=f"live-{time.time_ns()}", center_id=center_id, items=[migrated.transaction]
    )
    migration = events_pb2.BatchSubmission(
        batch_id=f"mig-{time.time_ns()}", center_id=center_id, history_items=[migrated]
    )
    worker = start_batch_worker(stack)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        [first] = await send(stack.amqp_url, stack.prefix, [live], wait_s=60)
        assert len(first.accepted) == 1, first
        [second] = await send(stack.amqp_url, stack.prefix, [migration], wait_s=60)
        assert not second.accepted
        assert [[v.field for v in r.violations] for r in second.rejected] == [["request_id"]]
        stored = await db.transactions.find_one({"_id": first.accepted[0].transaction_id})
        assert stored is not None
        assert (stored["status"], stored.get("migrated")) == ("RECORDED", None)
        [again] = await send(stack.amqp_url, stack.prefix, [live], wait_s=60)
        assert [a.transaction_id for a in again.accepted] == [first.accepted[0].transaction_id]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await client.close()
        await delete_retry_queues(stack)
