"""A batch handler over the in-memory store of test_worker_batch_answers, with its submitter's
rights and limits chosen by the test."""

from typing import Any

from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.unit.test_worker_batch_answers import (
    CENTER,
    SERVICE,
    MemoryStore,
    Message,
    Replies,
    Shared,
    Snapshot,
    batch,
)
from workers.batch.handlers import BatchHandler
from workers.batch.refusals import Limits

__all__ = ["MemoryStore", "Message", "Replies", "Shared", "batch", "handler", "with_history"]


def handler(
    shared: Shared,
    replies: Replies,
    *,
    may_submit: bool = True,
    may_migrate: bool = True,
    limits: Limits | None = None,
) -> BatchHandler:
    return BatchHandler(
        MemoryStore(shared),  # type: ignore[arg-type]
        Snapshot({"C1": CENTER}, {"ROP-VISA": SERVICE}),
        replies,
        b"s",
        limits or Limits(chunk=2),
        may_submit=lambda user, center_id: may_submit,
        may_migrate=lambda user: may_migrate,
    )


def with_history(submission: events_pb2.BatchSubmission, rating: int = 5) -> Any:
    """The batch with one migrated, completed, rated transaction of 2024 added."""
    item = submission.history_items.add(rating=rating)
    item.transaction.CopyFrom(
        intake_pb2.SubmitTransactionRequest(
            request_id="h-1",
            service_code="ROP-VISA",
            fee_baisa=5000,
            beneficiary_civil_number="91234567",
        )
    )
    item.submit_time.FromJsonString("2024-03-01T08:00:00Z")
    step = item.history.add(status=common_pb2.TRANSACTION_STATUS_COMPLETED, actor="a clerk")
    step.time.FromJsonString("2024-03-01T09:00:00Z")
    return submission
