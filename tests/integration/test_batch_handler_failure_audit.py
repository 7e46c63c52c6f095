"""Against the real broker and a real MongoDB-wire server: a batch whose handling keeps failing
(here a validator on `transactions` refuses its items, an error about the documents, at every
attempt) is dead-lettered as `handler-failed` and leaves an audit event, as every other batch
outcome does: a back office can trace each batch it sent to an outcome."""

import asyncio
import contextlib
import signal
import uuid
from typing import Any

import pytest
from pymongo.errors import CollectionInvalid

from sanad.amqp.topology import Topology
from sanad.cli.batch_send import send
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service
from tests.integration.failpoints import events_of
from tests.integration.workers_support import dead_letters, serving_batch_worker

pytestmark = pytest.mark.integration


async def refuse_transactions_of(db: Any, center_id: str) -> None:
    """A validator on `transactions` that refuses every document of the centre (code 121,
    DocumentValidationFailure: about the document, so not retried as an outage)."""
    validator = {"center_id": {"$ne": center_id}}
    try:
        await db.create_collection("transactions", validator=validator)
    except CollectionInvalid:  # created already
        await db.command("collMod", "transactions", validator=validator)


async def test_a_batch_dead_lettered_as_handler_failed_leaves_an_audit_event(
    stack: Stack, db: Any
) -> None:
    center_id, service = await open_centre_with_service(stack)
    batch_id = f"failing-{uuid.uuid4().hex}"
    batch = events_pb2.BatchSubmission(
        batch_id=batch_id,
        center_id=center_id,
        items=[
            intake_pb2.SubmitTransactionRequest(
                request_id=f"r-{n}",
                service_code=service,
                channel=COUNTER,
                fee_baisa=5000,
                beneficiary_civil_number=f"{70_000_000 + n}",
            )
            for n in range(2)
        ],
    )
    await refuse_transactions_of(db, center_id)
    worker = await serving_batch_worker(stack)
    sending = asyncio.create_task(send(stack.amqp_url, stack.prefix, [batch], wait_s=60))
    try:
        queue = Topology(stack.prefix).batch_queue
        assert await dead_letters(stack, queue, 1, within_s=30) == ["handler-failed"]

        async def audited() -> bool:
            return bool(await events_of(db, batch_id))

        await eventually(audited, within_s=10)
        [(outcome, target)] = await events_of(db, batch_id)
        assert outcome == "INTERNAL"
        assert target["refused_reason"] == "handler-failed"
        assert (target["batch_id"], target["center_id"]) == (batch_id, center_id)
        assert (target["items"], target["history_items"]) == ("2", "0")
        assert await db.transactions.count_documents({"center_id": center_id}) == 0
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
