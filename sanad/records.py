"""The stored shape of a transaction: written by the ingest worker, read by intake.

One document per transaction in `transactions`, keyed by transaction id. The
beneficiary appears only as a keyed hash and a masked number.
"""

from datetime import datetime
from typing import Any, Protocol

from sanad.domain.clock import to_millisecond
from sanad.domain.privacy import civil_hash, mask
from sanad.domain.transactions import REFUNDABLE, Status, Step, sla_clock
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2, intake_pb2

Document = dict[str, Any]
# Index key directions, as MongoDB numbers them (pymongo's ASCENDING and DESCENDING): written
# here so that this contract, which the domain modules read, does not import the driver.
ASCENDING, DESCENDING = 1, -1

# The message type of an accepted submission, and of several packed into one message
# (sanad.amqp.packing).
SUBMITTED_TYPE = events_pb2.TransactionSubmitted.DESCRIPTOR.full_name
SUBMITTED_PACK_TYPE = events_pb2.TransactionsSubmitted.DESCRIPTOR.full_name

COLLECTION = "transactions"
# The collection's one secondary index. Every listing reads one centre's transactions newest
# first, and its filters (status, agency, a window of submit times) narrow that scan. An index
# per status as well would cost every stored transaction, and every status change, a second
# index write; at Sanad volumes a centre's page of any status is near its newest anyway.
LISTING_INDEX = [("center_id", ASCENDING), ("submit_time", DESCENDING), ("_id", DESCENDING)]
# Records of request ids: a caller's request id and the transaction it was given (intake's
# RequestStore, and the batch worker's claims for its items).
REQUESTS_COLLECTION = "intake_requests"
# Intake's note of each status change and rating it is about to accept, until it has seen it
# published (services/intake/left_unsent.py): what a stopped intake left unsent. A note seen
# published loses its `since` rather than being removed (no role may remove a document), and
# the sparse index on `since` holds only the notes still waiting.
UNSENT_COLLECTION = "intake_unsent"
UNSENT_INDEX = [("since", ASCENDING)]


class SubmittedItem(Protocol):
    """What a caller sent for one transaction (intake's Submission)."""

    @property
    def request_id(self) -> str: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def fee_baisa(self) -> int: ...
    @property
    def civil_number(self) -> str: ...


class SubmittedCentre(Protocol):
    """The centre a transaction is submitted at (intake's CenterView)."""

    @property
    def id(self) -> str: ...
    @property
    def governorate_code(self) -> str: ...
    @property
    def wilayat_code(self) -> str: ...


class SubmittedService(Protocol):
    """The catalogue service a transaction is for (intake's ServiceView)."""

    @property
    def code(self) -> str: ...
    @property
    def agency_code(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def sla_hours(self) -> int: ...


def submitted_event(
    item: SubmittedItem,
    center: SubmittedCentre,
    service: SubmittedService,
    *,
    transaction_id: str,
    submitted_by: str,
    submit_time: datetime,
    civil_secret: bytes,
) -> events_pb2.TransactionSubmitted:
    """The TransactionSubmitted of an accepted submission; the civil number only hashed, masked."""
    return events_pb2.TransactionSubmitted(
        transaction_id=transaction_id,
        request_id=item.request_id,
        submitted_by=submitted_by,
        center_id=center.id,
        governorate_code=center.governorate_code,
        wilayat_code=center.wilayat_code,
        service_code=service.code,
        agency_code=service.agency_code,
        service_version=service.version,
        sla_hours=service.sla_hours,
        channel=f"CHANNEL_{item.channel}",
        fee_baisa=item.fee_baisa,
        beneficiary_hash=civil_hash(item.civil_number, civil_secret),
        beneficiary_masked=mask(item.civil_number),
        submit_time=to_timestamp(submit_time),
    )


def document_from_submitted(
    event: events_pb2.TransactionSubmitted, recorded_at: datetime
) -> Document:
    """The document first stored for a submission: RECORDED, with its two history steps."""
    submitted_at = event.submit_time.ToDatetime(tzinfo=recorded_at.tzinfo)
    return {
        "_id": event.transaction_id,
        "request_id": event.request_id,
        "submitted_by": event.submitted_by,
        "center_id": event.center_id,
        "governorate_code": event.governorate_code,
        "wilayat_code": event.wilayat_code,
        "service_code": event.service_code,
        "agency_code": event.agency_code,
        "service_version": event.service_version,
        "sla_hours": event.sla_hours,
        "channel": common_pb2.Channel.Name(event.channel).removeprefix("CHANNEL_"),
        "fee_baisa": event.fee_baisa,
        "beneficiary_hash": event.beneficiary_hash,
        "beneficiary_masked": event.beneficiary_masked,
        "submit_time": submitted_at,
        "record_time": recorded_at,
        "status": Status.RECORDED.value,
        "history": [
            {"status": Status.SUBMITTED.value, "time": submitted_at, "actor": event.submitted_by},
            {"status": Status.RECORDED.value, "time": recorded_at, "actor": "ingest"},
        ],
        "applied_changes": [],
        "revision": 0,
        "rating": 0,
    }


def finish(doc: Document, status: Status, at: datetime) -> None:
    """Record the outcome fields of a document that just reached a finished status.

    The clock is read off the times as they are stored (to_millisecond): the ingest worker's history
    comes back from MongoDB in milliseconds while the finishing change carries microseconds,
    and the clock of the one against the other could read a second more than the document's
    own stored times give (what intake shows), and count a completion within its SLA as late.
    """
    history = [Step(Status(h["status"]), to_millisecond(h["time"])) for h in doc["history"]]
    clock = sla_clock(history, to_millisecond(at))
    doc["finish_time"] = at
    doc["paused_seconds"] = clock.paused_seconds
    doc["sla_elapsed_seconds"] = clock.elapsed_seconds
    doc["fee_refund_due"] = status in REFUNDABLE


def proto_from_document(doc: Document, now: datetime) -> intake_pb2.Transaction:
    """The API view of a stored transaction, with its SLA clock as of now."""
    history = [Step(Status(h["status"]), h["time"]) for h in doc["history"]]
    clock = sla_clock(history, now)
    status = Status(doc["status"])
    return intake_pb2.Transaction(
        id=doc["_id"],
        request_id=doc.get("request_id", ""),
        center_id=doc["center_id"],
        service_code=doc["service_code"],
        agency_code=doc["agency_code"],
        service_version=doc.get("service_version", 0),
        channel=f"CHANNEL_{doc['channel']}",
        fee_baisa=doc["fee_baisa"],
        beneficiary_masked=doc["beneficiary_masked"],
        status=f"TRANSACTION_STATUS_{status}",
        history=[
            intake_pb2.StatusChange(
                status=f"TRANSACTION_STATUS_{h['status']}",
                time=to_timestamp(h["time"]),
                actor=h.get("actor", ""),
                note=h.get("note", ""),
            )
            for h in doc["history"]
        ],
        submit_time=to_timestamp(doc["submit_time"]),
        finish_time=to_timestamp(doc.get("finish_time")),
        paused_seconds=clock.paused_seconds,
        sla_elapsed_seconds=clock.elapsed_seconds,
        fee_refund_due=status in REFUNDABLE,
        rating=doc.get("rating", 0),
    )


def item_count(batch: events_pb2.BatchSubmission) -> int:
    """Items of a batch in the index space its answer uses: live items, then history items."""
    return len(batch.items) + len(batch.history_items)
