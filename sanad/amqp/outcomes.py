"""Publishing what a handler decided about each message (sanad.amqp.verdicts), confirmed by
the broker: parked retries and dead letters, as copies (sanad.amqp.copies). The consumer
(sanad.amqp.consumer) acks a micro-batch only once OutcomePublisher has published all of its
outcomes and the broker has confirmed them.

A message whose AMQP properties the client cannot decode reaches the handler with markers in
their place (sanad.amqp.properties), and is dead-lettered as `undecodable` (undecodable()).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from sanad.amqp.copies import (
    EXPIRES_HEADER,
    carried_headers,
    expiry_time,
    republished,
)
from sanad.amqp.metrics import DELAYED_RETRIES
from sanad.amqp.properties import shown, undecodable_properties
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
from sanad.amqp.verdicts import (
    Dead,
    DeadParts,
    Outcome,
    Part,
    PublishTimeout,
    Retry,
    TransientError,
)
from sanad.telemetry.metrics import AMQP_DEAD_LETTERED, BATCH_REFUSALS_UNANSWERED, RETRIES

log = logging.getLogger("sanad.amqp.consumer")


class ReplyRefused(Exception):
    """The broker refused (nacked) an answer: its reply queue takes no more."""


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
        """Publish an answer to a reply queue through the default exchange, confirmed.

        Raises ReplyRefused when the broker nacks it: the reply queue, its sender's own, takes
        no more (declared with `x-max-length` and `x-overflow: reject-publish`, as a batch
        user's permissions allow). That is no broken connection: taken for one, the worker
        reconnected and was handed the same batch again, and again, and the batches behind it
        waited (and were counted towards their delivery limit at each return)."""
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
        try:
            await self.confirmed(
                self.channel.default_exchange.publish(
                    message, routing_key=reply_to, mandatory=False
                )
            )
        except aiormq.exceptions.DeliveryError as error:
            if isinstance(error.frame, aiormq.spec.Basic.Nack):
                raise ReplyRefused(
                    f"the broker refused the answer to {reply_to[:100]!r}"
                ) from error
            raise

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
            if stalled and _answered(confirm):
                self.on_stall(False)
            confirm.result()
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


def undecodable(message: AbstractIncomingMessage) -> Dead | None:
    """Dead as `undecodable` when the client could not decode some property of message."""
    if not (found := undecodable_properties(message)):
        return None
    return Dead("undecodable", f"AMQP properties the client cannot decode: {shown(found)}")


def _answered(confirm: "asyncio.Future[Any]") -> bool:
    """Whether the broker answered the publish, confirming it or not: a nack (a reply queue
    that takes no more, ReplyRefused) ends a stall as a confirm does; it used to leave the
    worker NOT_SERVING, the consumer going on with a connection that works."""
    error = confirm.exception()
    return error is None or isinstance(error, aiormq.exceptions.DeliveryError)
