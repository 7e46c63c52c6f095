"""Request ids of status changes and cancellations: the record that remembers a change's first
answer, and how a retry is told apart from another change sent under the same id.

A change sent with a request id is accepted together with a record of its answer, keyed by the
caller and the id (request_store.RequestStore.accept_change writes both in one MongoDB
transaction). A retry finds the record and is answered from it, whatever happened to the
transaction since; another change under the same id is refused. Pure: no I/O.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sanad.domain.submissions import request_key
from sanad.domain.transactions import Status
from sanad.errors import AlreadyExists
from sanad.v1 import events_pb2

Document = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """A status change accepted and queued for the transaction's writer."""

    status: Status
    time: datetime
    actor: str
    note: str


def change_key(caller: str, request_id: str) -> str:
    """The record id of a change's request id. Prefixed, as the status and rating records are,
    so it never meets a submission's (a bare hash): the two RPC families keep their own ids."""
    return f"change\x1f{request_key(caller, request_id)}"


def answer_record(key: str, transaction_id: str, change: Change, sequence: int) -> Document:
    """What is remembered of an accepted change: what it asked for and how it was answered."""
    return {
        "_id": key,
        "transaction_id": transaction_id,
        "status": change.status.value,
        "note": change.note,
        "time": change.time,
        "actor": change.actor,
        "sequence": sequence,
    }


def answer_of(
    record: Document, request_id: str, *, transaction_id: str, status: Status, note: str
) -> Change:
    """The first answer, for a retry that asks for the same change; AlreadyExists when the
    request id was used for another change (another transaction, status, note or reason)."""
    if (record["transaction_id"], record["status"], record["note"]) != (
        transaction_id,
        status.value,
        note,
    ):
        raise AlreadyExists(f"request id {request_id!r} was already used for another status change")
    return Change(Status(record["status"]), record["time"], record["actor"], record["note"])


def awaits_confirm(record: Document, latest: Document | None) -> bool:
    """Whether the remembered change may still be unsent: it is the latest accepted change and
    its confirm was not noted. A change is followed only after its publish was confirmed
    (StatusChanges.make sends an unconfirmed latest change before judging the next)."""
    return (
        latest is not None
        and int(latest["sequence"]) == int(record["sequence"])
        and not latest.get("confirmed")
    )


def replayed(latest: Document, status: Status, note: str, actor: str) -> Change | None:
    """The answer to a retry without a request id of the latest change (the same status, actor
    and note), as its first call would have had it; None for a different change. A status never
    follows itself, so no new change is lost here."""
    event = events_pb2.TransactionStatusChanged.FromString(latest["event"])
    if (latest["status"], event.actor, event.note) != (status.value, actor, note):
        return None
    return Change(status, latest["time"], actor, note)
