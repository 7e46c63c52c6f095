"""What a handler decides about each message, and publishing it, confirmed by the broker.

A handler answers per message: done (None), dead (dead-letter with a reason), dead in parts (a
pack's poison items dead-lettered one by one, each alone with its reason) or retry later (park
on the delayed-retry queue; after max_retries round trips it is dead-lettered instead). It
raises TransientError for a dependency that failed in a way that may pass. The consumer
(sanad.amqp.consumer) acks a micro-batch only once OutcomePublisher has published all of its
outcomes and the broker has confirmed them.

A message whose AMQP properties the client cannot decode reaches the handler with markers in
their place (sanad.amqp.properties), and is dead-lettered as `undecodable` (undecodable()).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from sanad.amqp.metrics import DELAYED_RETRIES
from sanad.amqp.properties import decoded, shown, undecodable_properties
from sanad.amqp.topology import (
    CONTENT_TYPE,
    DETAIL_HEADER,
    ITEMS_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    RETRIES_HEADER,
    WAITING_AT_HEADER,
    Topology,
)
from sanad.telemetry.metrics import AMQP_DEAD_LETTERED, BATCH_REFUSALS_UNANSWERED, RETRIES

log = logging.getLogger("sanad.amqp.consumer")

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


class OutcomePublisher:
    """Publishes one work queue's replies, parked retries and dead letters on the consumer's
    confirmed channel; reports a broker that stops confirming through on_stall."""

    def __init__(
        self,
        topology: Topology,
        queue: str,
        *,
        max_retries: int,
        retry_delay_s: float,
        timeout_s: float,
        on_stall: Callable[[bool], None],
        retry_first_delay_s: float | None = None,
    ) -> None:
        """on_stall(True) when no confirm came for timeout_s, on_stall(False) when it came.
        A parked message waits retry_first_delay_s (by default retry_delay_s) on its first
        return, twice as long on each next, at most retry_delay_s."""
        self.topology = topology
        self.queue_name = queue
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self.retry_first_delay_s = retry_first_delay_s or retry_delay_s
        self.timeout_s = timeout_s
        self.on_stall = on_stall
        # The consumer's current channel (None between runs) and its stop event.
        self.channel: AbstractChannel | None = None
        self.stop = asyncio.Event()

    async def reply(
        self, reply_to: str, body: bytes, correlation_id: str, message_type: str
    ) -> None:
        """Publish an answer to a reply queue through the default exchange, confirmed."""
        if self.channel is None:
            raise TransientError("not connected to the broker")
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            type=message_type,
            correlation_id=correlation_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # Not mandatory: a submitter that stopped waiting took its reply queue with it, and the
        # worker keeps the answer for when it sends the batch again.
        await self.confirmed(
            self.channel.default_exchange.publish(message, routing_key=reply_to, mandatory=False)
        )

    async def publish(
        self,
        batch: Sequence[AbstractIncomingMessage],
        outcomes: Sequence[Outcome],
        dead: AbstractExchange,
    ) -> bool:
        """Park and dead-letter as the outcomes say; False when stopping before the broker
        confirmed them all (see confirmed): the batch then stays unacked."""
        try:
            for message, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Retry):
                    await self._retry_later(message, outcome, dead)
                elif isinstance(outcome, DeadParts):
                    for part in outcome.parts:
                        await self._dead_letter(
                            message, part.dead, dead, part, outcome.message_type
                        )
                elif outcome is not None:
                    await self._dead_letter(message, outcome, dead)
        except PublishTimeout as error:
            log.warning("leaving the micro-batch unacked: %s", error)
            return False
        return True

    async def confirmed(self, publishing: Awaitable[Any]) -> None:
        """Wait for the broker to confirm a publish; while it takes over timeout_s (an alarm
        blocks publishers) report a stall and wait on, and once stopping give up with
        PublishTimeout, a transient failure: nothing is acked, the batch returns to the queue.

        Waiting on rather than publishing again: the blocked copy is already in the socket and
        reaches the queue when the alarm ends, so every copy sent meanwhile would arrive too.
        """
        confirm = asyncio.ensure_future(publishing)
        stalled = False
        try:
            while not (await asyncio.wait({confirm}, timeout=self.timeout_s))[0]:
                if self.stop.is_set():
                    raise PublishTimeout("stopping before the broker confirmed a publish")
                if not stalled:
                    RETRIES.labels(self.queue_name).inc()
                    log.warning(
                        "the broker has confirmed no publish for %.1fs (an alarm?); waiting",
                        self.timeout_s,
                    )
                stalled = True
                self.on_stall(True)
            confirm.result()
            if stalled:
                self.on_stall(False)
        finally:
            confirm.cancel()

    def _carried_headers(self, message: AbstractIncomingMessage) -> dict[str, Any]:
        return carried_headers(message, self.topology.retry_queue(self.queue_name))

    async def _retry_later(
        self, message: AbstractIncomingMessage, outcome: Retry, dead: AbstractExchange
    ) -> None:
        sent = message.headers or {}
        count = sent.get(RETRIES_HEADER)
        retries = count if isinstance(count, int) else 0
        waited_at = sent.get(WAITING_AT_HEADER)
        if isinstance(waited_at, bytes):
            waited_at = waited_at.decode("utf-8", "replace")
        if outcome.progress and waited_at is not None and waited_at != outcome.progress:
            retries = 0  # what it waits for moved on while it was parked: a new wait
        if retries >= self.max_retries:
            detail = f"{outcome.detail} (gave up after {retries} retries)"
            await self._dead_letter(message, Dead(outcome.reason, detail), dead)
            return
        assert self.channel is not None
        headers = {**self._carried_headers(message), RETRIES_HEADER: retries + 1}
        if outcome.progress:
            headers[WAITING_AT_HEADER] = outcome.progress
        delay_s = self.retry_delay(retries)
        parked = republished(message, headers, expiration=delay_s)
        await self.confirmed(
            self.channel.default_exchange.publish(
                parked, routing_key=self.topology.retry_queue(self.queue_name), mandatory=True
            )
        )
        DELAYED_RETRIES.labels(self.queue_name, outcome.reason).inc()
        log.info(
            "parked a message for a delayed retry",
            extra={
                "reason": outcome.reason,
                "retries": retries + 1,
                "delay_s": delay_s,
                "queue": self.queue_name,
            },
        )

    def retry_delay(self, retries: int) -> float:
        """How long a message parked after `retries` returns (of its current wait) waits."""
        if retries >= 64:  # doubled that often, any first delay is past the longest
            return self.retry_delay_s
        return min(self.retry_delay_s, self.retry_first_delay_s * 2**retries)

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        outcome: Dead,
        dead: AbstractExchange,
        part: Part | None = None,
        part_type: str = "",
    ) -> None:
        """Dead-letter the message, or with `part` one item of a pack, alone, as a part_type."""
        headers = self._carried_headers(message)
        if part is not None:
            headers.pop(ITEMS_HEADER, None)
        headers[REASON_HEADER] = outcome.reason
        headers[DETAIL_HEADER] = outcome.detail[:500]
        headers[QUEUE_HEADER] = self.queue_name
        expiration = outcome.expires_after_s
        headers.pop(EXPIRES_HEADER, None)  # a sender's own says nothing of this letter
        if expiration is not None:
            headers[EXPIRES_HEADER] = expiry_time(expiration)
        copy = republished(message, headers, expiration=expiration, part=part, part_type=part_type)
        await self.confirmed(dead.publish(copy, routing_key=self.queue_name, mandatory=True))
        AMQP_DEAD_LETTERED.labels(self.queue_name, outcome.reason).inc()
        if outcome.unanswered:
            BATCH_REFUSALS_UNANSWERED.labels(outcome.reason).inc()
        log.warning(
            "dead-lettered a message",
            extra={
                "reason": outcome.reason,
                "detail": outcome.detail,
                "queue": self.queue_name,
                "message_id": part.message_id if part is not None else message.message_id,
                "expires_after_s": expiration,
                "unanswered": outcome.unanswered,
            },
        )


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
        body, message_type, message_id = part.body, part_type, part.message_id or None
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


def undecodable(message: AbstractIncomingMessage) -> Dead | None:
    """Dead as `undecodable` when the client could not decode some property of message."""
    if not (found := undecodable_properties(message)):
        return None
    return Dead("undecodable", f"AMQP properties the client cannot decode: {shown(found)}")
