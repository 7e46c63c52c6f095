"""A submitter's request id gives one transaction across its batches as within one (DESIGN
invariant 3): before, the batch worker stored every item under an id of its batch and place,
so rows sent again under a new batch id (as `batch-id-reused` advises) were stored twice."""

import asyncio
import signal
import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sanad.cli.batch_send import send
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, open_centre_with_service
from tests.integration.workers_support import (
    delete_retry_queues,
    serving_batch_worker,
    start_batch_worker,
)
from workers.batch.requests import REUSED

pytestmark = pytest.mark.integration


def item(service: str, request_id: str, civil: int) -> intake_pb2.SubmitTransactionRequest:
    return intake_pb2.SubmitTransactionRequest(
        request_id=request_id,
        service_code=service,
        channel=COUNTER,
        fee_baisa=5000,
        beneficiary_civil_number=f"{60_000_000 + civil}",
    )


def ids(answer: events_pb2.BatchResult) -> dict[int, str]:
    return {accepted.index: accepted.transaction_id for accepted in answer.accepted}


async def test_rows_sent_again_under_a_new_batch_id_are_answered_with_their_transactions(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    run = uuid.uuid4().hex
    first = events_pb2.BatchSubmission(
        batch_id=f"first-{run}",
        center_id=center_id,
        items=[item(service, f"{run}-{n}", n) for n in range(3)],
    )
    # Rows 1-2 again, a new row, row 0's request id with another beneficiary, and row 3 twice.
    second = events_pb2.BatchSubmission(
        batch_id=f"second-{run}",
        center_id=center_id,
        items=[
            item(service, f"{run}-1", 1),
            item(service, f"{run}-2", 2),
            item(service, f"{run}-3", 3),
            item(service, f"{run}-0", 99),
            item(service, f"{run}-3", 3),
        ],
    )
    worker = start_batch_worker(stack)
    try:
        [answer] = await send(stack.amqp_url, stack.prefix, [first], wait_s=60)
        [again] = await send(stack.amqp_url, stack.prefix, [second], wait_s=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)

    stored = ids(answer)
    assert ids(again) == {0: stored[1], 1: stored[2], 2: ids(again)[2], 4: ids(again)[2]}
    assert ids(again)[2] not in stored.values()
    [(index, refusal)] = [(r.index, r.violations) for r in again.rejected]
    assert index == 3
    assert [(v.field, v.description) for v in refusal] == [("request_id", REUSED)]
    assert await db.transactions.count_documents({"center_id": center_id}) == 4
    counted = await db.rollups.aggregate(
        [{"$match": {"center_id": center_id}}, {"$group": {"_id": 0, "n": {"$sum": "$submitted"}}}]
    )
    rollup = await counted.to_list()
    assert rollup == [{"_id": 0, "n": 4}]


async def test_batches_sharing_a_request_id_at_once_store_it_once(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    run = uuid.uuid4().hex
    batches = [
        events_pb2.BatchSubmission(
            batch_id=f"race-{run}-{n}",
            center_id=center_id,
            items=[item(service, f"{run}-shared", 7), item(service, f"{run}-own-{n}", n)],
        )
        for n in range(4)
    ]
    # Both consuming before the batches go out: each may take some of them, and a worker still
    # starting when the test ends would die of its SIGTERM instead of draining (seen in CI: -15).
    workers = list(await asyncio.gather(serving_batch_worker(stack), serving_batch_worker(stack)))
    try:
        answers = await asyncio.gather(
            *(send(stack.amqp_url, stack.prefix, [batch], wait_s=90) for batch in batches)
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)

    shared = {ids(answer)[0] for [answer] in answers}
    assert len(shared) == 1
    assert all(not answer.rejected for [answer] in answers)
    assert await db.transactions.count_documents({"center_id": center_id}) == 5
