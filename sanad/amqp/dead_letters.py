"""Dead letters on the broker: read one, copy it back to its work queue, pass over a queue.

Taking a message off a queue and handing it back counts as a delivery (quorum queues drop a
message at their delivery limit, 20 by default since RabbitMQ 4.0) and may move it. So a pass
goes once over the whole dead-letter queue, in order, and publishes every message again,
confirmed, before acking it: at the back of the dead-letter queue when it stays, into its work
queue when it is replayed. The queue keeps its order (a letter set aside during the pass lands
among the others). A pass stopped midway loses nothing: a message is then in both places at
worst, and the workers store a transaction once however often it arrives. A pass checks that
the work queue exists before it takes any letter.

A letter the broker drops after a while (a refused batch: its submitter was answered, and its
body holds clear civil numbers) is put back with what is left of its time, so a pass never
keeps it longer; its replayed copy carries no expiration, and so never expires in the work queue.
The broker drops an expired letter only at the head of its queue: one kept until taken (a batch
set aside by the broker at its delivery limit, a refusal nobody was answered) holds back the
expired ones behind it until a pass moves it to the back.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.connecting import CONNECT_TIMEOUT_S, connect
from sanad.amqp.outcomes import EXPIRES_HEADER, letter_headers, republished
from sanad.amqp.properties import install_lenient_decoding
from sanad.amqp.topology import (
    DETAIL_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    RETRIES_HEADER,
    Topology,
)

REPLAYS_HEADER = "x-sanad-replays"
# Shortest expiration of a letter put back past its time: the broker drops it at the head.
_LAPSED_S = 0.001
# Headers of a dead letter that do not belong on its replayed copy (with the broker's
# x-first-death-* and x-last-death-*; a quorum queue's delivery count is its own).
_DEATH_HEADERS = (
    REASON_HEADER,
    DETAIL_HEADER,
    RETRIES_HEADER,
    QUEUE_HEADER,
    EXPIRES_HEADER,
    "x-death",
    "x-delivery-count",
)
_DEATH_PREFIXES = ("x-first-death-", "x-last-death-")


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


@dataclass
class Pass:
    """What one pass over a dead-letter queue kept and replayed, in queue order, so far."""

    kept: list[DeadLetter] = field(default_factory=list)
    replayed: list[DeadLetter] = field(default_factory=list)


def letter_of(position: int, message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead letter says of itself; one the broker set aside names the broker's reason."""
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if not reason:
        deaths = headers.get("x-death")
        first = deaths[0] if isinstance(deaths, list) and deaths else {}
        cause = first.get("reason", "unknown") if isinstance(first, dict) else "unknown"
        reason = f"broker: {_text(cause)}"
    replays = headers.get(REPLAYS_HEADER)
    return DeadLetter(
        position=position,
        reason=_text(reason),
        detail=_text(headers.get(DETAIL_HEADER, "")),
        message_type=message.type or "",
        message_id=message.message_id or "",
        replays=replays if isinstance(replays, int) else 0,
        expires_at=_text(headers.get(EXPIRES_HEADER, "")),
    )


def replayed_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as its work queue first received it, counting this replay."""
    headers = {
        name: value
        for name, value in letter_headers(message).items()
        if name not in _DEATH_HEADERS and not name.startswith(_DEATH_PREFIXES)
    }
    replays = headers.get(REPLAYS_HEADER)
    headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
    return republished(message, headers)


def kept_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The letter to put back at the end of its queue, expiring when it would have."""
    return republished(message, letter_headers(message), expiration=_time_left(message))


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


async def pass_over(
    url: str,
    prefix: str,
    queue: str,
    replay: Callable[[DeadLetter], bool],
    done: Pass,
    *,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """One pass over the dead-letter queue of work queue `queue` (ingest or batch): each letter
    for which replay() is true goes back to the work queue, every other to the queue's back.
    `done` shows what was kept and replayed, also when the pass stops midway. TimeoutError when
    the broker has not answered within timeout_s."""
    # A letter with properties the client cannot decode (one the broker set aside) would close
    # the connection at every pass; its copies go without them (see republished).
    install_lenient_decoding()
    work = f"{prefix}.{queue}"
    dead_name = Topology(prefix).dead_queue(work)
    async with await connect(url, timeout_s) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        dead = await channel.declare_queue(dead_name, passive=True)
        await channel.declare_queue(work, passive=True)
        waiting = dead.declaration_result.message_count or 0
        for position in range(waiting):
            message = await dead.get(no_ack=False, fail=False)
            if message is None:  # fewer than counted: taken by someone else meanwhile
                break
            letter = letter_of(position, message)
            back = replay(letter)
            copy = replayed_copy(message) if back else kept_copy(message)
            destination = work if back else dead_name
            await channel.default_exchange.publish(copy, routing_key=destination, mandatory=True)
            await message.ack()
            (done.replayed if back else done.kept).append(letter)


def _text(value: object) -> str:
    # A header value that is not UTF-8 arrives as bytes (a sender's, on a letter the broker
    # set aside): shown escaped rather than ending the pass.
    return value.decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)
