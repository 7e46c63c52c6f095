"""The audit trail's event: one per state-changing call, its stored and protobuf forms.

The trail is append-only: nothing in the code base updates or deletes an event. In production,
grant the services' MongoDB user `insert` and `find` on `audit_log` and nothing more. Events are
written by sanad.security.audit_log, carried in a handler's own write through
sanad.security.audit_offer, and listed by sanad.security.audit_listing.

An event's `_id` is a time-sortable id of its time (milliseconds, as BSON stores the time), so
the `_id` index alone orders the trail newest first and bounds a time window: a second index on
`time` would cost every audited call another index write for nothing.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sanad.domain.clock import epoch_millis
from sanad.domain.ids import new_id
from sanad.rpc.timestamps import timestamp_fields
from sanad.v1 import audit_pb2

COLLECTION = "audit_log"
# The target key of what the service tells the trail and not the caller: a NOT_FOUND for a
# resource outside the caller's scope (errors.NotFound.audit_note) is told from a missing one.
NOTE_KEY = "audit_note"


@dataclass(frozen=True)
class AuditEvent:
    """Who called what on which target, the outcome, and when; `id` sorts by `time`."""

    time: datetime
    subject: str
    role: str
    agency_code: str
    center_id: str
    rpc: str
    target: dict[str, str]
    outcome: str
    request_id: str
    recorded_by: str
    id: str = field(default="")
    # A streaming call's items, by outcome (sanad.security.audit_items); empty for other calls.
    item_outcomes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", new_id(epoch_millis(self.time)))


def document_of(event: AuditEvent) -> dict[str, Any]:
    """The stored form of an event."""
    document = dict(vars(event))  # shallow: asdict deep-copied on every audited call
    document["_id"] = document.pop("id")
    document["target"] = dict(event.target)
    document["target_values"] = sorted(set(event.target.values()))
    if event.item_outcomes:
        document["item_outcomes"] = dict(event.item_outcomes)
    else:
        del document["item_outcomes"]  # only a streaming call's event stores the field
    return document


def from_document(doc: dict[str, Any]) -> AuditEvent:
    """The event a stored document holds."""
    return AuditEvent(
        time=doc["time"],
        subject=doc["subject"],
        role=doc["role"],
        agency_code=doc.get("agency_code", ""),
        center_id=doc.get("center_id", ""),
        rpc=doc["rpc"],
        target=dict(doc.get("target", {})),
        outcome=doc["outcome"],
        request_id=doc.get("request_id", ""),
        recorded_by=doc.get("recorded_by", ""),
        id=doc["_id"],
        item_outcomes=dict(doc.get("item_outcomes", {})),
    )


def to_proto(event: AuditEvent) -> audit_pb2.AuditEvent:
    message = audit_pb2.AuditEvent()
    write_proto(event, message)
    return message


def write_proto(event: AuditEvent, message: audit_pb2.AuditEvent) -> None:
    """Set an empty message's fields to the event's: in place, for an event carried inside
    another message (a TransactionSubmitted), where building one and copying it cost twice."""
    message.id = event.id
    message.time.seconds, message.time.nanos = timestamp_fields(event.time)
    message.subject = event.subject
    message.role = event.role
    message.agency_code = event.agency_code
    message.center_id = event.center_id
    message.rpc = event.rpc
    message.target.update(event.target)
    message.outcome = event.outcome
    message.request_id = event.request_id
    message.recorded_by = event.recorded_by
    if event.item_outcomes:
        message.item_outcomes.update(event.item_outcomes)


def from_proto(message: audit_pb2.AuditEvent) -> AuditEvent:
    return AuditEvent(
        time=message.time.ToDatetime(tzinfo=UTC),
        subject=message.subject,
        role=message.role,
        agency_code=message.agency_code,
        center_id=message.center_id,
        rpc=message.rpc,
        target=dict(message.target),
        outcome=message.outcome,
        request_id=message.request_id,
        recorded_by=message.recorded_by,
        id=message.id,
        item_outcomes=dict(message.item_outcomes),
    )
