"""Against the real broker and a real MongoDB-wire server: a batch at its limits is answered
item by item, whatever its items hold. A migration of 4,999 history items whose 50 steps each
name an actor and a note with a control character (2.2 MB sent) drew 100 violations an item, a
28.7 MB answer that neither MongoDB (16 MB documents) nor the broker (16 MiB messages) takes:
its good item was stored, and the batch was dead-lettered `handler-failed`, never answered."""

import signal
import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.topology import Topology
from sanad.cli.batch_send import send
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, open_centre_with_service
from tests.integration.workers_support import queue_depth, serving_batch_worker
from workers.batch.content import MAX_HISTORY_STEPS

pytestmark = pytest.mark.integration


def migration_of_faulty_steps(center_id: str, service: str) -> events_pb2.BatchSubmission:
    """One good live item, then history items up to the batch's limit, each of
    MAX_HISTORY_STEPS steps whose actor and note hold a control character."""
    batch = events_pb2.BatchSubmission(batch_id=f"steps-{uuid.uuid4().hex}", center_id=center_id)
    batch.items.add(
        request_id="good",
        service_code=service,
        channel=COUNTER,
        fee_baisa=5000,
        beneficiary_civil_number="90817263",
    )
    for n in range(4999):
        item = batch.history_items.add()
        item.transaction.CopyFrom(
            intake_pb2.SubmitTransactionRequest(
                request_id=f"h-{n}",
                service_code=service,
                fee_baisa=5000,
                beneficiary_civil_number="91234567",
            )
        )
        item.submit_time.FromJsonString("2024-03-01T08:00:00Z")
        for _ in range(MAX_HISTORY_STEPS):
            item.history.add(actor="\x01", note="\x01")
    return batch


async def test_a_migration_whose_every_step_is_faulty_is_answered_item_by_item(
    stack: Stack, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    batch = migration_of_faulty_steps(center_id, service)
    worker = await serving_batch_worker(stack)
    try:
        [answer] = await send(stack.amqp_url, stack.prefix, [batch], wait_s=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    assert not answer.refused_reason
    assert [a.index for a in answer.accepted] == [0]
    assert [r.index for r in answer.rejected] == list(range(1, 5000))
    assert {v.field for v in answer.rejected[0].violations} == {
        "history[0].actor",
        "history[0].note",
    }
    assert await db.transactions.count_documents({"center_id": center_id}) == 1
    dead_queue = Topology(stack.prefix).dead_queue(Topology(stack.prefix).batch_queue)
    assert await queue_depth(stack.amqp_url, dead_queue) == 0
