"""An audit event survives its stored and protobuf forms; only a streaming call's event stores
its items' outcomes."""

from dataclasses import replace
from datetime import UTC, datetime

from sanad.security.audit import (
    AuditEvent,
    document_of,
    from_document,
    from_proto,
    to_proto,
    write_proto,
)
from sanad.v1 import audit_pb2, events_pb2


def event(**item_outcomes: int) -> AuditEvent:
    return AuditEvent(
        time=datetime(2026, 12, 4, 9, 30, 0, 125000, tzinfo=UTC),
        subject="desk",
        role="centre",
        agency_code="",
        center_id="C1",
        rpc="/sanad.v1.IntakeService/SubmitTransactions",
        target={},
        outcome="OK",
        request_id="call-1",
        recorded_by="intake",
        item_outcomes=dict(item_outcomes),
    )


def test_a_streams_event_keeps_its_item_outcomes_in_both_forms() -> None:
    stream = event(OK=950, INVALID_ARGUMENT=40, RESOURCE_EXHAUSTED=10)
    document = document_of(stream)
    assert document["item_outcomes"] == {
        "OK": 950,
        "INVALID_ARGUMENT": 40,
        "RESOURCE_EXHAUSTED": 10,
    }
    assert from_document(document) == stream
    assert from_proto(to_proto(stream)) == stream


def test_any_other_event_stores_no_item_outcomes() -> None:
    unary = event()
    document = document_of(unary)
    assert "item_outcomes" not in document
    assert from_document(document) == unary
    assert from_proto(to_proto(unary)) == unary


def test_an_event_written_into_a_carrying_message_is_its_protobuf_form() -> None:
    carried = replace(event(), target={"request_id": "r-1", "center_id": "C1"})
    submitted = events_pb2.TransactionSubmitted(transaction_id="T1")
    write_proto(carried, submitted.audit)
    assert submitted.audit == to_proto(carried)
    assert from_proto(submitted.audit) == carried
    # A time MongoDB gave back without its zone is UTC, in either form.
    naive = replace(carried, time=carried.time.replace(tzinfo=None))
    written = audit_pb2.AuditEvent()
    write_proto(naive, written)
    assert written.time == to_proto(carried).time
