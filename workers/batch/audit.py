"""The audit event of one handled batch (DESIGN §6): who sent it, for which centre, what came of it.

No I/O here. A batch is a state-changing call that arrives through the queue, so it is audited
as an RPC is: subject the broker-validated `user_id`, role batch, outcome a gRPC status code
name (OK when answered item by item, whatever each item's verdict; the code that fits the
reason when refused as a whole; INTERNAL when its handling kept failing and it was dead-lettered
as `handler-failed`), request id the batch id.
"""

from datetime import datetime

from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.verdicts import Dead
from sanad.security.audit import AuditEvent
from sanad.security.batch_users import BATCH_USER_PREFIX
from sanad.security.identity import Role
from sanad.v1 import events_pb2

RPC = f"amqp:{SUBMISSION_TYPE}"
RECORDED_BY = "batch"
# As the trail keeps an RPC's target fields.
MAX_VALUE = 200
# The outcome of a batch refused as a whole, by the reason it is dead-lettered with.
REFUSAL_OUTCOMES = {
    "unknown-type": "INVALID_ARGUMENT",
    "undecodable": "INVALID_ARGUMENT",
    "invalid": "INVALID_ARGUMENT",
    "bad-reply-to": "INVALID_ARGUMENT",
    "too-large": "RESOURCE_EXHAUSTED",
    "body-too-large": "RESOURCE_EXHAUSTED",
    "not-allowed": "PERMISSION_DENIED",
    "history-not-allowed": "PERMISSION_DENIED",
    "batch-id-in-use": "PERMISSION_DENIED",
    "batch-id-reused": "ALREADY_EXISTS",
}
# The outcome of a batch dead-lettered because handling it kept failing (a bug, or a document
# MongoDB refuses): as an RPC whose servicer raised.
FAILED_OUTCOME = "INTERNAL"
# Refused before the body was read whole: its batch id and counts are unknown.
UNREAD = frozenset({"bad-reply-to", "unknown-type", "body-too-large", "undecodable"})


def answered(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission,
    now: datetime,
    accepted: int,
    rejected: int,
) -> AuditEvent:
    """The event of a batch answered item by item (all accepted, or partly refused)."""
    target = _target(message, submission)
    target.update(accepted=str(accepted), rejected=str(rejected))
    return _event(message, submission, now, target, "OK")


def refused(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission,
    now: datetime,
    refusal: Dead,
) -> AuditEvent:
    """The event of a batch refused as a whole; nothing of it was stored."""
    read = refusal.reason not in UNREAD
    if not read:
        submission = events_pb2.BatchSubmission()
    target = _target(message, submission, counted=read)
    target["refused_reason"] = refusal.reason
    outcome = REFUSAL_OUTCOMES.get(refusal.reason, "INVALID_ARGUMENT")
    return _event(message, submission, now, target, outcome)


def failed(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission | None,
    now: datetime,
    dead: Dead,
) -> AuditEvent:
    """The event of a batch dead-lettered as `handler-failed`: not answered, and the items of
    its chunks stored before the failure stay stored (sent again, it is answered with them).
    submission: the batch as read, or None when its body cannot be read."""
    target = _target(message, submission or events_pb2.BatchSubmission(), counted=bool(submission))
    target["refused_reason"] = dead.reason
    return _event(message, submission or events_pb2.BatchSubmission(), now, target, FAILED_OUTCOME)


def _target(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission,
    counted: bool = True,
) -> dict[str, str]:
    """The batch id, and the item counts of a batch that was read."""
    target = {
        "batch_id": _request_id(message, submission),
        # The centre the batch names; the event's center_id is the submitter's own.
        "center_id": submission.center_id[:MAX_VALUE],
        # Tells one publish from another of the same batch id (the submitter's answer key).
        "correlation_id": (message.correlation_id or "")[:MAX_VALUE],
    }
    if counted:
        target["items"] = str(len(submission.items))
        target["history_items"] = str(len(submission.history_items))
    return {key: value for key, value in target.items() if value}


def _request_id(message: AbstractIncomingMessage, submission: events_pb2.BatchSubmission) -> str:
    """The batch id; for a message refused before its body was read, what its properties name."""
    found = submission.batch_id or message.message_id or message.correlation_id or ""
    return found[:MAX_VALUE]


def _event(
    message: AbstractIncomingMessage,
    submission: events_pb2.BatchSubmission,
    now: datetime,
    target: dict[str, str],
    outcome: str,
) -> AuditEvent:
    return AuditEvent(
        time=now,
        subject=(message.user_id or "")[:MAX_VALUE],
        role=Role.BATCH.value,
        agency_code="",
        # The centre the submitter acts for (a `batch-<centre>` user's own), never the one its
        # batch names: a refused batch for another centre is not filed under that centre.
        center_id=_own_center(message.user_id or "")[:MAX_VALUE],
        rpc=RPC,
        target=target,
        outcome=outcome,
        request_id=_request_id(message, submission),
        recorded_by=RECORDED_BY,
    )


def _own_center(user_id: str) -> str:
    """The centre a `batch-<centre id>` user is scoped to; none for a trusted or other user."""
    return user_id.removeprefix(BATCH_USER_PREFIX) if user_id.startswith(BATCH_USER_PREFIX) else ""
