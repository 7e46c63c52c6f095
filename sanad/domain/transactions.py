"""Transaction statuses, which changes are legal, and the SLA clock.

Shared by intake (refuses illegal changes before queueing them) and the ingest
worker (the single writer, which applies them in order).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    """Where a transaction stands; names match sanad.v1.TransactionStatus."""

    SUBMITTED = "SUBMITTED"
    RECORDED = "RECORDED"
    IN_PROGRESS = "IN_PROGRESS"
    AWAITING_DOCUMENTS = "AWAITING_DOCUMENTS"
    AWAITING_AGENCY = "AWAITING_AGENCY"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


PAUSED = frozenset({Status.AWAITING_DOCUMENTS, Status.AWAITING_AGENCY})
FINISHED = frozenset({Status.COMPLETED, Status.REJECTED, Status.CANCELLED})
REFUNDABLE = frozenset({Status.REJECTED, Status.CANCELLED})

_WORKING = frozenset(
    {
        Status.IN_PROGRESS,
        Status.AWAITING_DOCUMENTS,
        Status.AWAITING_AGENCY,
        Status.COMPLETED,
        Status.REJECTED,
        Status.CANCELLED,
    }
)
_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.RECORDED}),
    Status.RECORDED: _WORKING,
    Status.IN_PROGRESS: _WORKING - {Status.IN_PROGRESS},
    Status.AWAITING_DOCUMENTS: frozenset({Status.IN_PROGRESS, Status.REJECTED, Status.CANCELLED}),
    Status.AWAITING_AGENCY: frozenset({Status.IN_PROGRESS, Status.REJECTED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
}

# What an agency may report; cancelling and recording have their own paths.
AGENCY_REPORTABLE = frozenset(
    {
        Status.IN_PROGRESS,
        Status.AWAITING_DOCUMENTS,
        Status.AWAITING_AGENCY,
        Status.COMPLETED,
        Status.REJECTED,
    }
)


def can_change(current: Status, new: Status) -> bool:
    """True when a transaction in `current` may move to `new`."""
    return new in _ALLOWED[current]


@dataclass(frozen=True)
class Step:
    """One entry of a status history."""

    status: Status
    time: datetime


@dataclass(frozen=True)
class Clock:
    """The SLA clock of a transaction: paused time and running time, in seconds."""

    paused_seconds: int
    elapsed_seconds: int


def sla_clock(history: Sequence[Step], now: datetime) -> Clock:
    """Running time from the first step to the finish (or now), paused intervals excluded.

    Counted exactly (in microseconds, as the times are kept), then in whole seconds: paused
    time rounded down, running time up, so that a running clock within a whole number of
    seconds (an SLA of whole hours) reads within it exactly when it is. Cut down to whole
    seconds, 48 hours and half a second read as 48 hours, within a 48-hour SLA (a metrics
    helper's repro; intake's times carry fractions of a second).
    """
    if not history:
        return Clock(0, 0)
    paused = timedelta(0)
    end = now
    for step, following in zip(history, [*history[1:], None], strict=True):
        until = following.time if following is not None else now
        if step.status in PAUSED:
            paused += max(until - step.time, timedelta(0))
        if step.status in FINISHED:
            end = step.time
            break
    total = max(end - history[0].time, timedelta(0))
    running = max(total - paused, timedelta(0))
    return Clock(_seconds(paused), _seconds(running, up=True))


def _seconds(span: timedelta, *, up: bool = False) -> int:
    """The whole seconds of a span, rounded down, or with up rounded up (exact: timedelta
    counts microseconds)."""
    if up:
        return -(-span // timedelta(seconds=1))
    return span // timedelta(seconds=1)
