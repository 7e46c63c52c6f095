"""Consuming in micro-batches: up to N messages or T seconds, acked only after they are handled.

The handler decides per message: done (ack), dead (dead-letter with a reason,
then ack), dead in parts (a pack's poison items dead-lettered one by one, each
alone with its reason, then ack) or retry later (park on the delayed-retry
queue, then ack; after max_retries round trips it is dead-lettered instead). A transient failure
raised by the handler pauses the consumer, backs off, and handles the same
micro-batch again without acking or dead-lettering anything, so a database
outage never loses a message. Any other exception is a message the handler cannot take:
each message is then handled alone, and the one that keeps failing is dead-lettered as
`handler-failed`. A consumer cancelled by the broker (its queue
deleted) raises ConsumerCancelled so the process exits instead of idling.

The connection is a plain one, not aio-pika's robust kind: a lost connection or channel ends
run() with BrokerConnectionLost, and the caller (workers.lifecycle) connects, declares and
consumes afresh with backoff. A robust connection reopened the channel but not our consumer,
so a worker idled, reporting SERVING, after every broker restart. Every wait on the broker
(setup, the cancel at stop) is bounded by BatchOptions.broker_timeout_s. A publish the broker
does not confirm within it (a memory or disk alarm blocks publishers) turns health NOT_SERVING
and is waited for; stopping meanwhile leaves the micro-batch unacked, like a transient failure.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from sanad.amqp.metrics import CONSUMER_CANCELLED, DELAYED_RETRIES
from sanad.amqp.topology import (
    CONTENT_TYPE,
    DETAIL_HEADER,
    ITEMS_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    RETRIES_HEADER,
    Topology,
)
from sanad.telemetry.metrics import (
    AMQP_ACKED,
    AMQP_CONSUMED,
    AMQP_DEAD_LETTERED,
    AMQP_NACKED,
    MICRO_BATCH_SIZE,
    RETRIES,
)

log = logging.getLogger("sanad.amqp.consumer")

# The reason of a message whose handling kept raising (see MicroBatchConsumer._outcomes).
HANDLER_FAILED = "handler-failed"

# What a broken or closed broker connection raises, to a handler that replies or publishes too.
BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError)


class TransientError(Exception):
    """A dependency failed in a way that may pass; handle the batch again later."""


class BrokerConnectionLost(ConnectionError):
    """The connection or channel closed under a running consumer; connect again."""


class PublishTimeout(TransientError):
    """Stopping while the broker has not confirmed a publish (e.g. an alarm blocks it)."""


class ConsumerCancelled(Exception):
    """The broker cancelled our consumer (e.g. the queue was deleted)."""


@dataclass(frozen=True)
class Dead:
    """Dead-letter this message: reason is a short label, detail a human sentence."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Retry:
    """Not applicable yet: park it on the retry queue; dead-letter as `reason` when retries end."""

    reason: str
    detail: str


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
Handler = Callable[[Sequence[AbstractIncomingMessage]], Awaitable[Sequence[Outcome]]]


@dataclass
class BatchOptions:
    prefetch: int = 1000
    # Items per micro-batch: a message counts once, a pack as the items its header names.
    max_messages: int = 500
    max_wait_s: float = 0.05
    max_backoff_s: float = 5.0
    max_retries: int = 10
    retry_delay_s: float = 2.0
    # Attempts at one message whose handling raises (not TransientError) before it is
    # dead-lettered as `handler-failed`.
    max_failures: int = 3
    # Longest wait on one broker operation: connecting and declaring, each confirmed publish
    # (reply, parked retry, dead letter), the consumer's cancel at stop. Meant to be the
    # deployable's `amqp_timeout_s` setting.
    broker_timeout_s: float = 5.0


class MicroBatchConsumer:
    """Consumes one work queue until stopped; one handler call per micro-batch."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        queue: str,
        handler: Handler,
        options: BatchOptions,
        *,
        reasons: Iterable[str] = (),
    ) -> None:
        """reasons: every reason the handler dead-letters with. Each (queue, reason) counter
        starts at zero, so a rate or increase() sees the first dead letter too (a series born
        at 1 shows no increase)."""
        self.url = url
        self.topology = topology
        self.queue_name = queue
        for reason in {*reasons, HANDLER_FAILED}:
            AMQP_DEAD_LETTERED.labels(queue, reason)
        self.handler = handler
        self.options = options
        self.connected = False
        self.last_batch_at = 0.0
        self._channel: AbstractChannel | None = None
        self._cancelled = asyncio.Event()
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()
        self._open_now: list[object] = []  # this run's connection and channel

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until stop is set; finish and ack the current micro-batch, then close.

        Raises BrokerConnectionLost when the connection or channel closes under it.
        """
        self._lost, self._stop = asyncio.Event(), stop
        async with asyncio.timeout(self.options.broker_timeout_s):
            connection = await aio_pika.connect(self.url)
        try:
            self._open_now = [connection]
            connection.close_callbacks.add(self._on_close)
            async with asyncio.timeout(self.options.broker_timeout_s):
                queue, dead = await self._open(connection)
            # A delivery of this channel only: a new run() starts with a new inbox, so nothing
            # delivered on a dead channel is acked on the next one.
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            tag = await queue.consume(inbox.put, timeout=self.options.broker_timeout_s)
            self.connected = True
            log.info("consuming %s", self.queue_name)
            await self._loop(inbox, dead, stop)
            if not self._cancelled.is_set() and not self._lost.is_set():
                await self._bounded(queue.cancel(tag), "cancelling the consumer")
        finally:
            self.connected = False
            self._channel, self._open_now = None, []
            with contextlib.suppress(*BROKER_ERRORS):
                await self._bounded(connection.close(), "closing the connection")
        if self._cancelled.is_set():
            raise ConsumerCancelled(f"the broker cancelled our consumer on {self.queue_name}")

    async def _open(
        self, connection: aio_pika.abc.AbstractConnection
    ) -> tuple[aio_pika.abc.AbstractQueue, AbstractExchange]:
        """The channel, topology and qos; the work queue and the dead-letter exchange."""
        # A dead letter or parked retry the broker cannot route (its queue deleted) raises
        # instead of counting as published: the batch then stays unacked and returns.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._open_now.append(channel)
        channel.close_callbacks.add(self._on_close)
        self._channel = channel
        await self.topology.declare(channel)
        await channel.set_qos(prefetch_count=self.options.prefetch)
        queue = await channel.get_queue(self.queue_name, ensure=False)
        dead = await channel.get_exchange(self.topology.dead_exchange, ensure=False)
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancel)
        return queue, dead

    def _on_close(self, sender: object, error: BaseException | None) -> None:
        """The connection or channel closed: health says so, and the loop ends.

        A connection of an earlier run() whose bounded close gave up may close later, when
        this run is consuming: it calls this too, and is told apart by its sender.
        """
        if sender in self._open_now:
            self.connected = False
            self._lost.set()

    async def _bounded(self, operation: Awaitable[Any], what: str) -> None:
        """Wait for operation at most broker_timeout_s; give up on it with a warning."""
        try:
            async with asyncio.timeout(self.options.broker_timeout_s):
                await operation
        except TimeoutError:
            log.warning(
                "%s took over %.1fs; going on without it", what, self.options.broker_timeout_s
            )

    async def reply(
        self, reply_to: str, body: bytes, correlation_id: str, message_type: str
    ) -> None:
        """Publish an answer to a reply queue through the default exchange, confirmed."""
        if self._channel is None:
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
        await self._confirmed(
            self._channel.default_exchange.publish(message, routing_key=reply_to, mandatory=False)
        )

    def _on_cancel(self, frame: Any) -> None:
        CONSUMER_CANCELLED.labels(self.queue_name).inc()
        log.error("the broker cancelled the consumer on %s", self.queue_name)
        self.connected = False
        self._cancelled.set()

    async def _loop(
        self,
        inbox: asyncio.Queue[AbstractIncomingMessage],
        dead: AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        while not stop.is_set() and not self._cancelled.is_set():
            batch = await self._collect(inbox, stop)
            if self._lost.is_set():  # what the dead channel delivered can no longer be acked
                raise BrokerConnectionLost(f"the broker connection closed under {self.queue_name}")
            if batch:
                await self._handle(batch, dead, stop)

    async def _collect(
        self, inbox: asyncio.Queue[AbstractIncomingMessage], stop: asyncio.Event
    ) -> list[AbstractIncomingMessage]:
        try:
            first = await asyncio.wait_for(inbox.get(), timeout=0.5)
        except TimeoutError:
            return []
        batch = [first]
        items = _items(first)
        deadline = time.monotonic() + self.options.max_wait_s
        while items < self.options.max_messages and not stop.is_set():
            if not inbox.empty():  # the fast path: deliveries already waiting
                message = inbox.get_nowait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                found = await _next_or_stop(inbox, stop, remaining)
                if found is None:
                    break
                message = found
            batch.append(message)
            items += _items(message)
        return batch

    async def _handle(
        self,
        batch: list[AbstractIncomingMessage],
        dead: AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        AMQP_CONSUMED.labels(self.queue_name).inc(len(batch))
        MICRO_BATCH_SIZE.labels(self.queue_name).observe(len(batch))
        outcomes = await self._outcomes(batch, stop)
        if outcomes is None or not await self._publish_outcomes(batch, outcomes, dead, stop):
            # Stopping while a dependency is down: leave the batch unacked; closing the
            # channel returns it to the queue for another worker.
            AMQP_NACKED.labels(self.queue_name).inc(len(batch))
            return
        await batch[-1].ack(multiple=True)
        AMQP_ACKED.labels(self.queue_name).inc(len(batch))
        self.last_batch_at = time.monotonic()

    async def _publish_outcomes(
        self,
        batch: list[AbstractIncomingMessage],
        outcomes: Sequence[Outcome],
        dead: AbstractExchange,
        stop: asyncio.Event,
    ) -> bool:
        """Park and dead-letter as the outcomes say; False when stopping before the broker
        confirmed them all (see _confirmed): the batch then stays unacked."""
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

    async def _confirmed(self, publishing: Awaitable[Any]) -> None:
        """Wait for the broker to confirm a publish; while it takes over broker_timeout_s (an
        alarm blocks publishers) report NOT_SERVING and wait on, and once stopping give up with
        PublishTimeout, a transient failure: nothing is acked, the batch returns to the queue.

        Waiting on rather than publishing again: the blocked copy is already in the socket and
        reaches the queue when the alarm ends, so every copy sent meanwhile would arrive too.
        """
        confirm = asyncio.ensure_future(publishing)
        stalled = False
        try:
            while not (await asyncio.wait({confirm}, timeout=self.options.broker_timeout_s))[0]:
                if self._stop.is_set():
                    raise PublishTimeout("stopping before the broker confirmed a publish")
                if not stalled:
                    RETRIES.labels(self.queue_name).inc()
                    log.warning(
                        "the broker has confirmed no publish for %.1fs (an alarm?); waiting",
                        self.options.broker_timeout_s,
                    )
                stalled, self.connected = True, False
            confirm.result()
            if stalled:
                self.connected = not (self._lost.is_set() or self._cancelled.is_set())
        finally:
            confirm.cancel()

    async def _outcomes(
        self, batch: list[AbstractIncomingMessage], stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        """The handler's outcomes; None when stopping while a dependency is down.

        A handler that raises anything but TransientError meets a message it cannot take (or
        has a bug): the micro-batch is handled again one message at a time, and a message that
        still fails alone, max_failures times, is dead-lettered as `handler-failed` with the
        error. The others are handled as usual and the worker keeps running; a worker that
        exited instead had every message it held redelivered again and again, until the
        queue's delivery limit dead-lettered the good ones with the poison, without a reason.
        """
        delay = 0.1
        failures = 0
        while True:
            try:
                return await self.handler(batch)
            except TransientError as error:
                if stop.is_set():
                    return None
                RETRIES.labels(self.queue_name).inc()
                log.warning("transient failure, retrying micro-batch in %.1fs: %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_backoff_s)
            except BROKER_ERRORS:
                raise  # the connection's fault, not the message's: reconnect, redeliver
            except Exception as error:
                if len(batch) > 1:
                    log.exception(
                        "handling a micro-batch of %d failed; handling each alone", len(batch)
                    )
                    return await self._one_by_one(batch, stop)
                failures += 1
                if failures >= self.options.max_failures:
                    log.exception("handling a message failed %d times", failures)
                    return [Dead(HANDLER_FAILED, f"{type(error).__name__}: {error}")]
                log.warning("handling a message failed (%s); trying it again", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_backoff_s)

    async def _one_by_one(
        self, batch: list[AbstractIncomingMessage], stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        outcomes: list[Outcome] = []
        for message in batch:
            alone = await self._outcomes([message], stop)
            if alone is None:
                return None
            outcomes.extend(alone)
        return outcomes

    async def _retry_later(
        self, message: AbstractIncomingMessage, outcome: Retry, dead: AbstractExchange
    ) -> None:
        count = (message.headers or {}).get(RETRIES_HEADER)
        retries = count if isinstance(count, int) else 0
        if retries >= self.options.max_retries:
            detail = f"{outcome.detail} (gave up after {retries} retries)"
            await self._dead_letter(message, Dead(outcome.reason, detail), dead)
            return
        assert self._channel is not None
        headers = {**carried_headers(message), RETRIES_HEADER: retries + 1}
        parked = republished(message, headers, expiration=self.options.retry_delay_s)
        await self._confirmed(
            self._channel.default_exchange.publish(
                parked, routing_key=self.topology.retry_queue(self.queue_name), mandatory=True
            )
        )
        DELAYED_RETRIES.labels(self.queue_name, outcome.reason).inc()
        log.info(
            "parked a message for a delayed retry",
            extra={"reason": outcome.reason, "retries": retries + 1, "queue": self.queue_name},
        )

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        outcome: Dead,
        dead: AbstractExchange,
        part: Part | None = None,
        part_type: str = "",
    ) -> None:
        """Dead-letter the message, or with `part` one item of a pack, alone, as a part_type."""
        headers = carried_headers(message)
        if part is not None:
            headers.pop(ITEMS_HEADER, None)
        headers[REASON_HEADER] = outcome.reason
        headers[DETAIL_HEADER] = outcome.detail[:500]
        headers[QUEUE_HEADER] = self.queue_name
        copy = republished(message, headers, part=part, part_type=part_type)
        await self._confirmed(dead.publish(copy, routing_key=self.queue_name, mandatory=True))
        AMQP_DEAD_LETTERED.labels(self.queue_name, outcome.reason).inc()
        log.warning(
            "dead-lettered a message",
            extra={
                "reason": outcome.reason,
                "detail": outcome.detail,
                "queue": self.queue_name,
                "message_id": part.message_id if part is not None else message.message_id,
            },
        )


async def _next_or_stop(
    inbox: asyncio.Queue[AbstractIncomingMessage], stop: asyncio.Event, wait_s: float
) -> AbstractIncomingMessage | None:
    """The next delivery within wait_s, or None on timeout or stop (SIGTERM ends the wait).

    A cancelled get leaves its message in the inbox, unacked; deliveries arrive in
    delivery-tag order, so the batch's ack(multiple=True) never covers it.
    """
    getter = asyncio.ensure_future(inbox.get())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({getter, stopper}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if getter.done():
        return getter.result()
    getter.cancel()
    return None


def _items(message: AbstractIncomingMessage) -> int:
    """How many items a message carries: a pack's header says, any other message is one."""
    count = (message.headers or {}).get(ITEMS_HEADER)
    return count if isinstance(count, int) and count > 0 else 1


def carried_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    """Headers of a republished copy; the broker-validated user id travels as a header."""
    headers = dict(message.headers or {})
    if message.user_id:
        headers.setdefault("x-sanad-user-id", message.user_id)
    return headers


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
    """
    if part is None:
        body, message_type, message_id = message.body, message.type, message.message_id
    else:
        body, message_type, message_id = part.body, part_type, part.message_id or None
    return aio_pika.Message(
        body,
        headers=headers,
        content_type=message.content_type or CONTENT_TYPE,
        type=message_type,
        message_id=message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        timestamp=message.timestamp,
        expiration=expiration,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
