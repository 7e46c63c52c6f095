"""Every batch handled leaves one audit event (DESIGN §6): who sent it and the centre it acts
for (as a refused gRPC call records its caller's own), the batch id, the centre it names and
item counts, the outcome; a resend answered from the saved answer leaves none."""

from typing import Any

from sanad.amqp.outcomes import ReplyRefused
from sanad.amqp.verdicts import Dead
from sanad.security.audit import COLLECTION, AuditEvent
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler
from workers.batch import audit
from workers.batch.refusals import DEAD_LETTER_REASONS

# Who sent the batches of these tests, as their events name the caller.
C1_SUBMITTER = {
    "subject": "batch-C1",
    "role": "batch",
    "center_id": "C1",
    "rpc": "amqp:sanad.v1.BatchSubmission",
    "request_id": "b-1",
}


def event_fields(event: dict[str, Any]) -> dict[str, Any]:
    return {key: event[key] for key in ("subject", "role", "center_id", "rpc", "request_id")}


async def test_an_answered_batch_writes_one_event_with_its_counts_and_outcome() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)
    submission = batch("r-1", "r-2")
    submission.items[1].service_code = "NOPE"  # refused by field: a partly refused batch

    assert await worker.handle(Message(submission.SerializeToString(), user_id="batch-C1")) is None
    # Sent again (the submitter lost the answer): answered from the saved answer, no new event.
    assert await worker.handle(Message(submission.SerializeToString(), user_id="batch-C1")) is None

    [event] = shared.audit_events
    assert event_fields(event) == C1_SUBMITTER
    assert event["outcome"] == "OK"
    assert event["target"] == {
        "batch_id": "b-1",
        "center_id": "C1",
        "correlation_id": "c-1",
        "items": "2",
        "history_items": "0",
        "accepted": "1",
        "rejected": "1",
    }
    assert event["recorded_by"] == "batch"
    assert event["_id"]
    assert event["time"]


async def test_a_batch_refused_as_a_whole_writes_one_event_naming_the_reason() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, may_submit=False)

    outcome = await worker.handle(Message(batch("r-1").SerializeToString(), user_id="batch-C9"))

    assert isinstance(outcome, Dead)
    [event] = shared.audit_events
    # Filed under the submitter's own centre, not the one its refused batch names.
    assert event_fields(event) == {
        "subject": "batch-C9",
        "role": "batch",
        "center_id": "C9",
        "rpc": "amqp:sanad.v1.BatchSubmission",
        "request_id": "b-1",
    }
    assert event["outcome"] == "PERMISSION_DENIED"
    assert event["target"]["refused_reason"] == "not-allowed"
    assert event["target"]["center_id"] == "C1"
    assert not event["redelivered"]
    assert not shared.transactions


async def test_a_redelivered_refusal_asks_the_store_to_look_for_its_earlier_event() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, may_submit=False)
    body = batch("r-1").SerializeToString()

    await worker.handle(Message(body, user_id="batch-C9", redelivered=True))

    [event] = shared.audit_events
    assert event["redelivered"]


async def test_a_message_refused_unread_is_audited_under_its_message_id() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)

    outcome = await worker.handle(
        Message(b"\xff\xff", reply_to="sanad.ingest", message_id="b-7", user_id="batch-C1")
    )

    assert isinstance(outcome, Dead)
    assert outcome.reason == "bad-reply-to"
    [event] = shared.audit_events
    assert (event["request_id"], event["outcome"]) == ("b-7", "INVALID_ARGUMENT")
    assert event["target"] == {
        "batch_id": "b-7",
        "correlation_id": "c-1",
        "refused_reason": "bad-reply-to",
    }


def test_every_refusal_reason_has_an_outcome_named_by_a_grpc_status_code() -> None:
    assert set(audit.REFUSAL_OUTCOMES) == set(DEAD_LETTER_REASONS)
    assert COLLECTION == "audit_log"
    assert AuditEvent.__dataclass_fields__["role"]


async def test_a_batch_dead_lettered_as_handler_failed_writes_one_internal_event() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)
    dead = Dead("handler-failed", "BulkWriteError: Document failed validation")
    body = batch("r-1", "r-2").SerializeToString()

    await worker.failed(Message(body, user_id="batch-C1"), dead)

    [event] = shared.audit_events
    assert event_fields(event) == C1_SUBMITTER
    assert event["outcome"] == "INTERNAL"
    assert event["target"] == {
        "batch_id": "b-1",
        "center_id": "C1",
        "correlation_id": "c-1",
        "items": "2",
        "history_items": "0",
        "refused_reason": "handler-failed",
    }
    assert not replies.sent  # never answered: it alerts as SanadBatchDeadLetteredUnanswered


async def test_a_failed_batch_whose_body_cannot_be_read_is_audited_under_its_message_id() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)
    dead = Dead("handler-failed", "ValueError: unreadable")

    await worker.failed(
        Message(b"\xff\xff", message_id="b-9", user_id="batch-C1", redelivered=True), dead
    )

    [event] = shared.audit_events
    assert (event["request_id"], event["outcome"]) == ("b-9", "INTERNAL")
    assert event["target"] == {
        "batch_id": "b-9",
        "correlation_id": "c-1",
        "refused_reason": "handler-failed",
    }
    assert event["redelivered"]  # the store looks for an earlier delivery's event first


async def test_a_reply_queue_that_refuses_the_answer_costs_only_its_sender_the_answer() -> None:
    shared = Shared()

    async def refusing(reply_to: str, body: bytes, correlation: str, kind: str) -> None:
        raise ReplyRefused(f"the broker refused the answer to {reply_to!r}")

    worker = handler(shared, refusing)  # type: ignore[arg-type]
    submission = batch("r-1")

    assert await worker.handle(Message(submission.SerializeToString())) is None  # acked
    assert len(shared.transactions) == 1
    assert [e["outcome"] for e in shared.audit_events] == ["OK"]
    refused = handler(shared, refusing, may_submit=False)  # type: ignore[arg-type]
    outcome = await refused.handle(Message(batch("r-2", batch_id="b-2").SerializeToString()))
    assert isinstance(outcome, Dead)
    assert outcome.unanswered  # counted apart: SanadBatchDeadLetteredUnanswered
