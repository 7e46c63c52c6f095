"""What a handler decides about each message: plain values, no I/O.

A handler answers per message: done (None), dead (dead-letter with a reason), dead in parts (a
pack's poison items dead-lettered one by one, each alone with its reason) or retry later (park
on the delayed-retry queue; after max_retries round trips it is dead-lettered instead). It
raises TransientError for a dependency that failed in a way that may pass. The consumer
(sanad.amqp.consumer) acks a micro-batch only once sanad.amqp.outcomes.OutcomePublisher has
published all of its outcomes and the broker has confirmed them.
"""

from dataclasses import dataclass
from typing import NamedTuple


class TransientError(Exception):
    """A dependency failed in a way that may pass; handle the batch again later."""


class PublishTimeout(TransientError):
    """Stopping while the broker has not confirmed a publish (e.g. an alarm blocks it)."""


@dataclass(frozen=True)
class Dead:
    """Dead-letter this message: reason is a short label, detail a human sentence.

    expires_after_s: the broker drops the dead letter that long after it is set aside (a
    per-message expiration; dead-letter queues have no dead-letter exchange of their own, so
    it is gone). None keeps it until an operator takes it off the queue.
    unanswered: a request refused whose sender nobody answered (a batch without a reply queue
    it could be answered on), counted apart once its letter is confirmed.
    """

    reason: str
    detail: str
    expires_after_s: float | None = None
    unanswered: bool = False


@dataclass(frozen=True)
class Retry:
    """Not applicable yet: park it on the retry queue; dead-letter as `reason` when retries end.

    `progress` says where what it waits for stands (a transaction's last applied change, say).
    A message parked again after that moved on starts its count again, and so its delays from
    the first, shortest one: its retries bound a wait in which nothing moves, not a wait behind
    a long line that does (a burst of one transaction's changes spread over several workers)."""

    reason: str
    detail: str
    progress: str = ""


class Part(NamedTuple):
    """One poison item of a packed message: its bytes, why, and its own message id (the
    pack's id names its first item, which may have been stored fine)."""

    body: bytes
    dead: Dead
    message_id: str = ""


@dataclass(frozen=True)
class DeadParts:
    """Some items of a packed message are poison: dead-letter each alone, as a message of
    `message_type` with its own reason; the rest of the message was handled."""

    message_type: str
    parts: tuple[Part, ...]


Outcome = Dead | Retry | DeadParts | None
