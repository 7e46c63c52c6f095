"""The copies a worker publishes of a message it took (a parked retry, a dead letter, a replay)
and the headers they carry: who first published it, when the letter expires, what the client
could not decode, and the broker's own record of where it died.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.properties import decoded, shown, undecodable_properties
from sanad.amqp.topology import CONTENT_TYPE
from sanad.amqp.verdicts import Part

# On a dead letter that the broker drops after a while (Dead.expires_after_s): when, as an ISO
# 8601 UTC time. The message's own `expiration` counts from when a queue took it; a pass of
# sanad.amqp.dead_letter_pass that puts the letter back reads this header to keep the same end.
EXPIRES_HEADER = "x-sanad-expires-at"

# On a republished copy (a parked retry, a dead letter): the user_id the broker validated on the
# original, which the copy cannot carry as its own property (see republished).
USER_ID_HEADER = "x-sanad-user-id"

# On a republished copy: the properties of the original the client could not decode, which the
# copy goes without (see republished).
UNDECODABLE_HEADER = "x-sanad-undecodable"


def expiry_time(after_s: float) -> str:
    """The EXPIRES_HEADER value of a letter dropped after_s from now."""
    return (datetime.now(UTC) + timedelta(seconds=after_s)).isoformat(timespec="milliseconds")


def carried_headers(message: AbstractIncomingMessage, retry_queue: str) -> dict[str, Any]:
    """Headers of a republished copy of a message off a work queue whose delayed-retry queue
    is retry_queue; the broker-validated user id travels as USER_ID_HEADER. A sender writes
    its own headers, so one it sent is never carried: it would name any user it liked on the
    dead letter. A copy of ours back from retry_queue (back_from_retry) has no user_id of its
    own: the USER_ID_HEADER we wrote on it names the user the broker validated on the
    original, and stays, through every further retry and into the dead letter."""
    return _naming_the_user(message, written_by_us=back_from_retry(message, retry_queue))


def back_from_retry(message: AbstractIncomingMessage, retry_queue: str) -> bool:
    """Whether message is a copy the worker parked on retry_queue, which the broker has
    dead-lettered back into the work queue when its delay ran out: the latest x-death entry
    names retry_queue, and it came through the default exchange, as retry_queue dead-letters
    (Topology.retry_queue_arguments). A sender can write any x-death into its own headers, but
    publishes through its work queue's exchange (P.transactions, P.batch); only a user the
    broker lets write to the default exchange (amq.default: workers, operators) could deliver
    a message of its own that way."""
    return _died_last_in(message, retry_queue) and message.exchange == ""


def letter_headers(message: AbstractIncomingMessage, work_queue: str) -> dict[str, Any]:
    """Headers of a copy of a dead letter of work_queue. The worker publishes its letters
    without the sender's user_id, so the USER_ID_HEADER it wrote stays. A letter the broker
    set aside (set_aside_by_broker) is the sender's message as sent: its user_id names the
    sender, and a USER_ID_HEADER on it is the sender's own, so dropped."""
    return _naming_the_user(message, written_by_us=not set_aside_by_broker(message, work_queue))


def set_aside_by_broker(message: AbstractIncomingMessage, work_queue: str) -> bool:
    """Whether the broker itself moved this dead letter out of work_queue (its delivery limit,
    or the sender's expiration): the latest x-death entry names that queue. Such a letter is
    the message as its sender sent it, so every x-sanad-* header on it is the sender's own.
    A letter the worker wrote may carry x-death too: that of the retry queue it waited in."""
    return _died_last_in(message, work_queue)


def _died_last_in(message: AbstractIncomingMessage, queue: str) -> bool:
    """Whether the latest x-death entry of message names queue."""
    return latest_death(message.headers or {}).get("queue") in (queue, queue.encode())


def latest_death(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The newest entry of a message's x-death (the broker puts it first); empty when none."""
    deaths = headers.get("x-death")
    latest = deaths[0] if isinstance(deaths, list) and deaths else {}
    return latest if isinstance(latest, dict) else {}


def _naming_the_user(message: AbstractIncomingMessage, *, written_by_us: bool) -> dict[str, Any]:
    headers = without_deaths(message.headers or {})
    if not written_by_us:
        headers.pop(USER_ID_HEADER, None)
    if message.user_id:
        headers[USER_ID_HEADER] = message.user_id
    return headers


def without_deaths(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers without the broker's record of where a message died (x-death, x-first-death-*,
    x-last-death-*). A copy we publish carries none: the broker writes its own when it
    dead-letters the copy, and one on the message we copy may be the sender's, written to pass
    for a letter the broker set aside (set_aside_by_broker), which would keep forever a
    refused batch meant to expire."""
    return {
        name: value
        for name, value in headers.items()
        if name != "x-death" and not name.startswith(("x-first-death-", "x-last-death-"))
    }


def republished(
    message: AbstractIncomingMessage,
    headers: dict[str, Any],
    expiration: float | None = None,
    *,
    part: Part | None = None,
    part_type: str = "",
) -> aio_pika.Message:
    """A copy to publish again; with `part`, of that item of a pack only, as a `part_type`.

    Without the user id: the broker validates it against the publisher, who is not its user.
    Without the properties the client could not decode either (they would not encode): the
    copy's UNDECODABLE_HEADER names them.
    """
    if part is None:
        body, message_type, message_id = message.body, message.type, message.message_id
    else:
        body, message_type, message_id = part.body, part_type, _short(part.message_id)
    if dropped := undecodable_properties(message):
        headers = {**headers, UNDECODABLE_HEADER: shown(dropped)}
    return aio_pika.Message(
        body,
        headers=encodable(headers),
        content_type=decoded(message.content_type) or CONTENT_TYPE,
        type=decoded(message_type),
        message_id=decoded(message_id),
        correlation_id=decoded(message.correlation_id),
        reply_to=decoded(message.reply_to),
        timestamp=decoded(message.timestamp),
        expiration=expiration,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


# AMQP's short strings (message_id among them) hold at most 255 bytes of UTF-8.
SHORT_STRING_BYTES = 255


def _short(value: str) -> str | None:
    """A pack item's own id as its copy's message_id; None when there is none, or when it is
    longer than a short string holds (the item's body names it all the same). A forged pack's
    poison item with a longer id (300 letters, or 128 Arabic ones) failed its dead letter at
    the client, and the consumer with it, at every redelivery, holding the queue."""
    return value if value and len(value.encode()) <= SHORT_STRING_BYTES else None


def encodable(value: Any) -> Any:
    """Header values as the client can encode them again: a long string that is not UTF-8
    arrives as bytes (AMQP allows any bytes there), which the client cannot send; as a
    bytearray it goes out as the same bytes, a byte array. Tables and arrays alike, nested.
    Without this, one such header sent the workers into a reconnect loop on every copy they
    published (a dead letter, a parked retry), holding good messages with it."""
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, dict):
        return {name: encodable(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value


# Who published a message on a work queue, as far as the broker vouches for it. RabbitMQ
# refuses a message whose user_id is not the publishing connection's user, so a set user_id
# names its publisher. A copy reaches a work queue through the default exchange: a parked retry
# the broker dead-letters back (back_from_retry) or a dead letter an operator replays
# (sanad.amqp.dead_letter_pass). Its publisher is a worker or an operator, the only users the
# deployments let write to the default exchange, and the original publisher travels in
# USER_ID_HEADER, written from the original's validated user_id when the copy was made.
def original_publisher(message: AbstractIncomingMessage) -> str:
    """The broker user that published the message first; '' when it named none."""
    if message.exchange == "":
        value = (message.headers or {}).get(USER_ID_HEADER)
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8", "replace")
        return value if isinstance(value, str) else ""
    return message.user_id or ""
