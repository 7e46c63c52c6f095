"""Applying status changes and ratings to a stored transaction document, in order, once each.

Pure functions over the document dict: no I/O. Each applied change is remembered
in `applied_changes`, so a redelivered change is recognised and changes nothing.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sanad.amqp.consumer import Dead
from sanad.domain.transactions import FINISHED, Status, can_change
from sanad.records import Document, finish
from workers.ingest.rollups import RollupIncrements


class Applied(Enum):
    """What happened to a change that was not refused."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class StatusChange:
    """A decoded TransactionStatusChanged."""

    transaction_id: str
    change_id: str
    status: Status
    time: datetime
    actor: str
    note: str


@dataclass(frozen=True)
class Rating:
    """A decoded TransactionRated; its change id is derived from its content."""

    transaction_id: str
    change_id: str
    rating: int
    time: datetime
    actor: str


Change = StatusChange | Rating


def apply_change(doc: Document, change: Change, rollups: RollupIncrements) -> Applied | Dead:
    """Apply one change to doc in place and count it in rollups, or say why it is refused."""
    if change.change_id in doc.get("applied_changes", []):
        return Applied.DUPLICATE
    if isinstance(change, Rating):
        refused = _apply_rating(doc, change, rollups)
    else:
        refused = _apply_status(doc, change, rollups)
    if refused is not None:
        return refused
    doc.setdefault("applied_changes", []).append(change.change_id)
    return Applied.APPLIED


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


def _apply_rating(doc: Document, change: Rating, rollups: RollupIncrements) -> Dead | None:
    if not 1 <= change.rating <= 5:
        return Dead("invalid", f"rating {change.rating} is not between 1 and 5")
    if doc["status"] != Status.COMPLETED.value:
        return Dead("not-completed", f"transaction {doc['_id']} is {doc['status']}, not COMPLETED")
    if doc.get("rating"):
        return Dead("already-rated", f"transaction {doc['_id']} was already rated")
    doc["rating"] = change.rating
    doc["rating_time"] = change.time
    rollups.rated(doc)
    return None
