"""Dead letters on the broker: what one says of itself, and the copies a pass publishes of it.

A pass (sanad.amqp.dead_letter_pass) puts each letter it keeps back at the end of its queue, and
each one it replays into its work queue. A letter the broker drops after a while (a refused
batch: its body holds clear civil numbers) is put back with what is left of its time, so a pass
never keeps it longer; its replayed copy carries no expiration, and so never expires in the work
queue. The broker drops an expired letter only at the head of its queue: one kept until taken
(a batch set aside by the broker at its delivery limit, a handler-failed one) holds back the
expired ones behind it until a pass moves it to the back.

A letter the broker set aside itself (set_aside_by_broker) is the message as its sender sent
it: the x-sanad-* headers on it are the sender's, never read as the letter's reason or expiry.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.copies import (
    EXPIRES_HEADER,
    latest_death,
    letter_headers,
    republished,
    set_aside_by_broker,
    without_deaths,
)
from sanad.amqp.topology import (
    DETAIL_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    RETRIES_HEADER,
    WAITING_AT_HEADER,
)

REPLAYS_HEADER = "x-sanad-replays"
# Shortest expiration of a letter put back past its time: the broker drops it at the head.
_LAPSED_S = 0.001
# Headers of a dead letter that do not belong on its replayed copy, beside the broker's record
# of its death (outcomes.without_deaths; a quorum queue's delivery count is its own).
_DEATH_HEADERS = (
    REASON_HEADER,
    DETAIL_HEADER,
    RETRIES_HEADER,
    WAITING_AT_HEADER,
    QUEUE_HEADER,
    EXPIRES_HEADER,
    "x-delivery-count",
)


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter queue, as an operator reads it."""

    position: int
    reason: str
    detail: str
    message_type: str
    message_id: str
    replays: int
    # When the broker drops it (ISO 8601 UTC); empty: kept until an operator takes it.
    expires_at: str = ""


def letter_of(position: int, message: AbstractIncomingMessage, work_queue: str) -> DeadLetter:
    """What a dead letter of work_queue says of itself. One the broker set aside says only what
    the broker wrote (x-death): its reason, no detail, and no expiry."""
    headers: dict[str, Any] = dict(message.headers or {})
    replays = headers.get(REPLAYS_HEADER)
    if set_aside_by_broker(message, work_queue):
        headers = {"x-death": headers.get("x-death")}
    reason = headers.get(REASON_HEADER)
    if not reason:
        cause = latest_death(headers).get("reason", "unknown")
        reason = f"broker: {_text(cause)}"
    return DeadLetter(
        position=position,
        reason=_text(reason),
        detail=_text(headers.get(DETAIL_HEADER, "")),
        message_type=message.type or "",
        message_id=message.message_id or "",
        replays=replays if isinstance(replays, int) else 0,
        expires_at=_text(headers.get(EXPIRES_HEADER, "")),
    )


def replayed_copy(message: AbstractIncomingMessage, work_queue: str) -> aio_pika.Message:
    """The message as its work queue first received it, counting this replay."""
    headers = _without_death(letter_headers(message, work_queue))
    replays = headers.get(REPLAYS_HEADER)
    headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
    return republished(message, headers)


def kept_copy(message: AbstractIncomingMessage, work_queue: str) -> aio_pika.Message:
    """The letter to put back at the end of its queue, expiring when it would have.

    One the broker set aside goes back as a letter of ours, which never expires: its reason
    and work queue in our headers, without the sender's that would describe a letter, and
    without x-death, so the next pass reads what this one wrote (the validated user too)."""
    headers = letter_headers(message, work_queue)
    if not set_aside_by_broker(message, work_queue):
        return republished(message, headers, expiration=_time_left(message))
    reason = letter_of(0, message, work_queue).reason
    return republished(
        message, {**_without_death(headers), REASON_HEADER: reason, QUEUE_HEADER: work_queue}
    )


def _without_death(headers: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value for name, value in without_deaths(headers).items() if name not in _DEATH_HEADERS
    }


def _time_left(message: AbstractIncomingMessage) -> float | None:
    """Seconds until the letter's EXPIRES_HEADER (at least _LAPSED_S); None without one.

    A header that does not read as a time leaves the letter its own expiration, counted
    afresh: it was set aside to expire, and a pass drops nothing by itself."""
    found = (message.headers or {}).get(EXPIRES_HEADER)
    if found is None:
        return None
    try:
        ends = datetime.fromisoformat(_text(found))
    except ValueError:
        own = message.expiration
        return float(own) if isinstance(own, int | float) and own > 0 else None
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)
    return max((ends - datetime.now(UTC)).total_seconds(), _LAPSED_S)


def _text(value: object) -> str:
    # A header value that is not UTF-8 arrives as bytes (a sender's, on a letter the broker
    # set aside): shown escaped rather than ending the pass.
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)
