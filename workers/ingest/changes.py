"""Applying status changes and ratings to a stored transaction document, in order, once each.

Pure functions over the document dict: no I/O. Each applied change is remembered
in `applied_changes`, so a redelivered change is recognised and changes nothing.

Status changes carry intake's sequence number (1, 2, 3... per transaction, each judged by
intake against the one before). The document keeps the last sequence applied: a change is
applied only as the next one, one further on waits on the retry queue for the gap to fill
(two workers, or a change parked and retried, can deliver them out of order), and one at or
below it was applied already. A change without a sequence (from an intake that predates
it) is applied as it arrives, unless it is older than the last step: a late one never
overrides a newer status; it is acked as superseded and logged.

A numbered change refused as illegal takes its place in the sequence all the same, and is
remembered in `refused_changes` (change id, reason, detail) in the same write: handled again
(a redelivery after the commit and before its dead letter was confirmed, or the micro-batch
run again after an unknown commit result) it is refused the same way, never acked as a
duplicate of itself (DESIGN §5.4). Refusals are rare, so the list stays short.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sanad.amqp.verdicts import Dead, Retry
from sanad.domain.transactions import FINISHED, Status, can_change
from sanad.records import Document, finish
from workers.storage.rollups import RollupIncrements

# Numbered changes refused as illegal, kept with the document so a repeat is refused again.
REFUSED_CHANGES = "refused_changes"


class Applied(Enum):
    """What happened to a change that was not refused; all three are acked. The value is the
    change's outcome label in sanad_worker_changes_total."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class StatusChange:
    """A decoded TransactionStatusChanged."""

    transaction_id: str
    change_id: str
    status: Status
    time: datetime
    actor: str
    note: str
    sequence: int = 0


@dataclass(frozen=True)
class Rating:
    """A decoded TransactionRated; its change id is derived from its content."""

    transaction_id: str
    change_id: str
    rating: int
    time: datetime
    actor: str


Change = StatusChange | Rating
# What became of one change: the consumer acks an Applied, dead-letters a Dead, parks a Retry.
ChangeOutcome = Applied | Dead | Retry


def apply_change(doc: Document, change: Change, rollups: RollupIncrements) -> ChangeOutcome:
    """Apply one change to doc in place and count it in rollups, or say why it is refused or
    must wait. A sequenced change that is refused still takes its place in the sequence (so
    the ones after it are not held back), and so changes the document's `sequence` and
    `refused_changes`."""
    if (earlier := refused_before(doc, change.change_id)) is not None:
        return earlier
    if change.change_id in doc.get("applied_changes", []):
        return Applied.DUPLICATE
    if isinstance(change, Rating):
        refused = _apply_rating(doc, change, rollups)
    else:
        placed = _place(doc, change)
        if placed is not None:
            return placed
        refused = _apply_status(doc, change, rollups)
        if refused is not None and change.sequence:
            _remember(doc, change.change_id, refused)
    if refused is not None:
        return refused
    doc.setdefault("applied_changes", []).append(change.change_id)
    return Applied.APPLIED


def refused_before(doc: Document, change_id: str) -> Dead | None:
    """The refusal a numbered change met when it took its place, if it did."""
    for refusal in doc.get(REFUSED_CHANGES, []):
        if refusal.get("change_id") == change_id:
            return Dead(refusal["reason"], refusal["detail"])
    return None


def _remember(doc: Document, change_id: str, refused: Dead) -> None:
    entry = {"change_id": change_id, "reason": refused.reason, "detail": refused.detail}
    doc.setdefault(REFUSED_CHANGES, []).append(entry)


def _place(doc: Document, change: StatusChange) -> Applied | Retry | None:
    """None when the change is the next to apply (its sequence taken), else what it is."""
    if not change.sequence:
        last = doc["history"][-1]["time"] if doc["history"] else None
        return Applied.SUPERSEDED if last is not None and change.time < last else None
    applied = int(doc.get("sequence", 0))
    if change.sequence <= applied:
        return Applied.DUPLICATE
    if change.sequence > applied + 1:
        return Retry(
            "change-out-of-order",
            f"change {change.sequence} of transaction {doc['_id']} waits for {applied + 1}",
            progress=f"applied {applied}",
        )
    doc["sequence"] = change.sequence
    return None


def _apply_status(doc: Document, change: StatusChange, rollups: RollupIncrements) -> Dead | None:
    current = Status(doc["status"])
    if not can_change(current, change.status):
        return Dead(
            "illegal-status-change",
            f"transaction {doc['_id']} cannot go from {current} to {change.status}",
        )
    step = {"status": change.status.value, "time": change.time, "actor": change.actor}
    if change.note:
        step["note"] = change.note
    doc["history"].append(step)
    doc["status"] = change.status.value
    if change.status in FINISHED:
        finish(doc, change.status, change.time)
        rollups.finished(doc)
    return None


def _apply_rating(doc: Document, change: Rating, rollups: RollupIncrements) -> Dead | Retry | None:
    if not 1 <= change.rating <= 5:
        return Dead("invalid", f"rating {change.rating} is not between 1 and 5")
    if doc["status"] != Status.COMPLETED.value:
        if Status(doc["status"]) in FINISHED:
            detail = f"transaction {doc['_id']} is {doc['status']}, not COMPLETED"
            return Dead("not-completed", detail)
        # Intake takes a rating once it accepted the completion, and publishes it once the
        # broker confirmed that completion; it may still be stored after the rating arrives
        # (another worker's micro-batch, or the completion parked on the retry queue): the
        # rating waits for it, its count starting again as the transaction moves on.
        return Retry(
            "not-completed",
            f"the rating of transaction {doc['_id']} waits for its completion",
            progress=f"status {doc['status']} {doc.get('sequence', 0)}",
        )
    if doc.get("rating"):
        return Dead("already-rated", f"transaction {doc['_id']} was already rated")
    doc["rating"] = change.rating
    doc["rating_time"] = change.time
    rollups.rated(doc)
    return None
