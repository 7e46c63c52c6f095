"""Turns AMQP deliveries into stored transactions and applied changes; names the poison."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError, Message

from sanad.amqp.copies import original_publisher
from sanad.amqp.metrics import CHANGES_APPLIED
from sanad.amqp.outcomes import undecodable
from sanad.amqp.packing import MAX_PACK_ITEMS
from sanad.amqp.verdicts import Dead, DeadParts, Outcome, Part
from sanad.domain.clock import utcnow
from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.domain.money import MAX_FEE_BAISA
from sanad.domain.transactions import Status
from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE, Document, document_from_submitted
from sanad.security import audit
from sanad.v1 import common_pb2, events_pb2
from sanad.wire_format import wire_fields
from workers.ingest.changes import Applied, Change, ChangeOutcome, Rating, StatusChange

log = logging.getLogger("sanad.ingest")

# Every reason this worker dead-letters with (its counters start at zero).
DEAD_LETTER_REASONS = (
    "not-allowed",
    "unknown-type",
    "undecodable",
    "invalid",
    "too-large",
    "illegal-status-change",
    "not-completed",
    "already-rated",
    "unknown-transaction",
    "change-out-of-order",
)
# The labels of sanad_worker_changes_total: change_label() gives one of the outcomes.
CHANGE_KINDS = ("status", "rating")
CHANGE_OUTCOMES = (*(applied.value for applied in Applied), "dead", "retry")
STATUS_CHANGED_TYPE = events_pb2.TransactionStatusChanged.DESCRIPTOR.full_name
RATED_TYPE = events_pb2.TransactionRated.DESCRIPTOR.full_name


class Store(Protocol):
    async def record(
        self,
        documents: Sequence[Document],
        changes: Sequence[Change],
        audits: Mapping[str, Document] | None = None,
    ) -> list[ChangeOutcome]: ...


@dataclass(frozen=True)
class Submitted:
    """A transaction to store, and the audit event of the call that submitted it, if carried."""

    document: Document
    audit: Document | None = None


@dataclass(frozen=True)
class Pack:
    """The items of a TransactionsSubmitted: those to store, and each poison one with its bytes."""

    items: list[Submitted]
    poison: list[Part]


Decoded = Submitted | Pack | Change | Dead


def decode(
    message: AbstractIncomingMessage, now: datetime, publishers: frozenset[str] = frozenset()
) -> Decoded:
    """The document(s) to store or change to apply, or why the message is poison. With
    `publishers`, a message that none of those broker users published first is not-allowed:
    whoever else may write to the transactions exchange must not store transactions, changes
    or audit events in intake's name."""
    if (broken := _not_allowed(message, publishers) or undecodable(message)) is not None:
        return broken
    if message.type == SUBMITTED_TYPE:
        return decode_submitted(message, now)
    if message.type == SUBMITTED_PACK_TYPE:
        return _decode_pack(message, now)
    if message.type == STATUS_CHANGED_TYPE:
        return _decode_status(message)
    if message.type == RATED_TYPE:
        return _decode_rating(message)
    return Dead("unknown-type", f"message type {message.type!r} is not handled here")


def _not_allowed(message: AbstractIncomingMessage, publishers: frozenset[str]) -> Dead | None:
    if not publishers or (sender := original_publisher(message)) in publishers:
        return None
    named = repr(sender) if sender else "a publisher that set no user_id"
    return Dead("not-allowed", f"published by {named}, not one of SANAD_INGEST_PUBLISHERS")


def _parse(message: AbstractIncomingMessage, event: Message) -> Dead | None:
    try:
        event.ParseFromString(message.body)
    except DecodeError as error:
        return Dead("undecodable", f"not a valid {message.type}: {error}")
    return None


def decode_submitted(message: AbstractIncomingMessage, now: datetime) -> Submitted | Dead:
    event = events_pb2.TransactionSubmitted()
    if (broken := _parse(message, event)) is not None:
        return broken
    return _submitted(event, now)


def _decode_pack(message: AbstractIncomingMessage, now: datetime) -> Pack | Dead:
    if (broken := _pack_too_large(message)) is not None:
        return broken
    pack = events_pb2.TransactionsSubmitted()
    if (broken := _parse(message, pack)) is not None:
        return broken
    if not pack.items:
        return Dead("invalid", "a pack without items")
    items: list[Submitted] = []
    poison: list[Part] = []
    for event in pack.items:
        decoded = _submitted(event, now)
        if isinstance(decoded, Dead):
            poison.append(Part(event.SerializeToString(), decoded, event.transaction_id))
        else:
            items.append(decoded)
    return Pack(items, poison)


def _pack_too_large(message: AbstractIncomingMessage) -> Dead | None:
    """A pack of more items than intake packs, counted on the wire before any is parsed: parsed,
    three packs of 2,000,000 near-empty items (10 MB each) took the worker from 1.3 to 1.9 GB,
    and each item was dead-lettered alone."""
    try:
        fields = wire_fields(memoryview(message.body))
        if sum(1 for _ in islice(fields, MAX_PACK_ITEMS + 1)) > MAX_PACK_ITEMS:
            return Dead("too-large", f"a pack of over {MAX_PACK_ITEMS:,} items; intake packs"
                        " at most that many (SANAD_PACK_MAX_ITEMS)")  # fmt: skip
    except DecodeError as error:
        return Dead("undecodable", f"not a valid {message.type}: {error}")
    return None


def _submitted(event: events_pb2.TransactionSubmitted, now: datetime) -> Submitted | Dead:
    missing = [f for f in ("transaction_id", "center_id", "service_code") if not getattr(event, f)]
    if missing or not event.HasField("submit_time"):
        return Dead("invalid", f"missing fields: {', '.join(missing) or 'submit_time'}")
    carried = event.audit if event.HasField("audit") else None
    if carried is not None and (not carried.id or not carried.HasField("time") or not carried.rpc):
        return Dead("invalid", "the carried audit event lacks its id, time or rpc")
    if event.channel not in common_pb2.Channel.values():
        return Dead("invalid", f"unknown channel {event.channel}")
    if (beyond := _beyond_bounds(event)) is not None:
        return Dead("invalid", beyond)
    try:
        document = document_from_submitted(event, now)
        event_doc = None if carried is None else audit.document_of(audit.from_proto(carried))
    except (ValueError, OverflowError) as error:
        return _out_of_range(error)
    return Submitted(document, event_doc)


# Fields of a submission that hold the registry's codes and ids, or a caller's request id: intake
# sends none longer than MAX_CODE_LENGTH (sanad.domain.codes).
_CODE_FIELDS = (
    "transaction_id",
    "center_id",
    "governorate_code",
    "wilayat_code",
    "service_code",
    "agency_code",
    "request_id",
)
# Who submitted or changed a transaction (an identity's subject), a note: far above any intake
# sends (notes are at most 1,000 characters), far below what would strain a stored document.
MAX_TEXT_LENGTH = 10_000
# A keyed hash in hex, a masked number: short.
MAX_BENEFICIARY_LENGTH = 128


def _beyond_bounds(event: events_pb2.TransactionSubmitted) -> str | None:
    """Why a submission is not one intake could have sent: a field longer, or a number larger,
    than intake ever sends. Stored, such a value broke what reads it later: a fee near 2**63
    overflowed the rollups' sums (the worker retried that unit forever, holding the queue) and
    the reports' int64 fields (INTERNAL), a request id of 5 MB made every listing page of its
    centre larger than a gRPC message."""
    if long := [name for name in _CODE_FIELDS if len(getattr(event, name)) > MAX_CODE_LENGTH]:
        return f"longer than {MAX_CODE_LENGTH} characters: {', '.join(long)}"
    if len(event.submitted_by) > MAX_TEXT_LENGTH:
        return f"submitted_by is longer than {MAX_TEXT_LENGTH:,} characters"
    beneficiary = max(len(event.beneficiary_hash), len(event.beneficiary_masked))
    if beneficiary > MAX_BENEFICIARY_LENGTH:
        return f"the beneficiary's hash or masked number is longer than {MAX_BENEFICIARY_LENGTH}"
    if not 0 <= event.fee_baisa <= MAX_FEE_BAISA:
        return f"fee_baisa {event.fee_baisa} is not from 0 to {MAX_FEE_BAISA:,}"
    if event.sla_hours < 0 or event.service_version < 0:
        return "sla_hours and service_version must not be negative"
    return None


def _out_of_range(error: Exception) -> Dead:
    """A Timestamp outside protobuf's range (years 1-9999, nanos below a second)."""
    return Dead("invalid", f"a time out of range: {error}")


def _decode_status(message: AbstractIncomingMessage) -> StatusChange | Dead:
    event = events_pb2.TransactionStatusChanged()
    if (broken := _parse(message, event)) is not None:
        return broken
    missing = [f for f in ("transaction_id", "change_id") if not getattr(event, f)]
    if missing or not event.HasField("time") or not event.status:
        return Dead("invalid", f"missing fields: {', '.join(missing) or 'time or status'}")
    try:
        name = common_pb2.TransactionStatus.Name(event.status).removeprefix("TRANSACTION_STATUS_")
    except ValueError:
        return Dead("invalid", f"unknown status {event.status}")
    ids, texts = (event.transaction_id, event.change_id), (event.note, event.actor)
    if max(map(len, ids)) > MAX_CODE_LENGTH or max(map(len, texts)) > MAX_TEXT_LENGTH:
        return Dead("invalid", "an id, note or actor longer than intake sends")
    try:
        changed_at = event.time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        return _out_of_range(error)
    return StatusChange(
        transaction_id=event.transaction_id,
        change_id=event.change_id,
        status=Status(name),
        time=changed_at,
        actor=event.actor,
        note=event.note,
        sequence=event.sequence,
    )


def _decode_rating(message: AbstractIncomingMessage) -> Rating | Dead:
    event = events_pb2.TransactionRated()
    if (broken := _parse(message, event)) is not None:
        return broken
    if not event.transaction_id or not event.HasField("time"):
        return Dead("invalid", "missing fields: transaction_id or time")
    if len(event.transaction_id) > MAX_CODE_LENGTH or len(event.actor) > MAX_TEXT_LENGTH:
        return Dead("invalid", "a transaction id or actor longer than intake sends")
    try:
        given = event.time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:
        return _out_of_range(error)
    return Rating(
        transaction_id=event.transaction_id,
        # Ratings carry no change id; their content identifies a redelivery.
        change_id=f"rating:{event.rating}:{int(given.timestamp() * 1000)}",
        rating=event.rating,
        time=given,
        actor=event.actor,
    )


class IngestHandler:
    """One micro-batch: decode all, store submissions then changes in one transaction."""

    def __init__(self, store: Store, publishers: frozenset[str] = frozenset()) -> None:
        self.store = store
        # The broker users whose messages are stored (intake's); empty: anyone's (dev).
        self.publishers = publishers
        # Every (kind, outcome) series exists from the start, so the first superseded or dead
        # change shows as an increase from zero rather than as a series appearing.
        for kind in CHANGE_KINDS:
            for outcome in CHANGE_OUTCOMES:
                CHANGES_APPLIED.labels(kind, outcome)

    async def __call__(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        now = utcnow()
        decoded = [decode(message, now, self.publishers) for message in batch]
        submitted = [s for d in decoded for s in _stored(d)]
        documents = [s.document for s in submitted]
        audits = {s.document["_id"]: s.audit for s in submitted if s.audit is not None}
        changes = [d for d in decoded if isinstance(d, StatusChange | Rating)]
        change_outcomes = iter(await self.store.record(documents, changes, audits))
        outcomes: list[Outcome] = []
        for item in decoded:
            if isinstance(item, Dead):
                outcomes.append(item)
            elif isinstance(item, Submitted | Pack):
                poison = item.poison if isinstance(item, Pack) else None
                outcomes.append(DeadParts(SUBMITTED_TYPE, tuple(poison)) if poison else None)
            else:
                outcome = next(change_outcomes)
                kind = "rating" if isinstance(item, Rating) else "status"
                CHANGES_APPLIED.labels(kind, change_label(outcome)).inc()
                # Applied, duplicate and superseded changes are all acked.
                outcomes.append(None if isinstance(outcome, Applied) else outcome)
        log.debug(
            "stored micro-batch", extra={"documents": len(documents), "changes": len(changes)}
        )
        return outcomes


def change_label(outcome: ChangeOutcome) -> str:
    """The outcome label of sanad_worker_changes_total: applied, duplicate, superseded, dead
    or retry."""
    if isinstance(outcome, Applied):
        return outcome.value
    return "dead" if isinstance(outcome, Dead) else "retry"


def _stored(decoded: Decoded) -> list[Submitted]:
    """The submissions a decoded message carries: itself, a pack's good items, or none."""
    if isinstance(decoded, Submitted):
        return [decoded]
    if isinstance(decoded, Pack):
        return decoded.items
    return []
