"""Consuming in micro-batches: up to N messages or T seconds, acked only after they are handled.

The consume loop reads each micro-batch off its inbox (sanad.amqp.inbox) and calls the handler
under the retry rules of sanad.amqp.handling; the handler decides per message
(sanad.amqp.verdicts: done, dead, dead in parts, retry later), and the micro-batch is acked once
OutcomePublisher has published those outcomes, confirmed. A consumer cancelled by the broker
(its queue deleted) raises ConsumerCancelled so the process exits instead of idling. At stop a
handler still running gets BatchOptions.drain_grace_s, then is cancelled, its micro-batch left
unacked, and every backoff pause ends at once.

The connection is a plain one, not aio-pika's robust kind: a lost connection or channel ends
run() with BrokerConnectionLost, and the caller (workers.lifecycle) connects, declares and
consumes afresh with backoff. A robust connection reopened the channel but not our consumer,
so a worker idled, reporting SERVING, after every broker restart. Every wait on the broker
(setup, the cancel at stop) is bounded by BatchOptions.broker_timeout_s. A publish the broker
does not confirm within it (a memory or disk alarm blocks publishers) turns health NOT_SERVING
and is waited for; stopping meanwhile leaves the micro-batch unacked, like a transient failure.

A delivery whose properties the client cannot decode would close the connection from inside
aiormq's frame reader, again at every redelivery: a consumer first has pamqp decode such
properties as markers (sanad.amqp.properties), and its handler
dead-letters the message as `undecodable`.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from sanad.amqp.handling import (
    BROKER_ERRORS,
    HANDLER_FAILED,
    FailureHook,
    Handler,
    RetryingHandler,
)
from sanad.amqp.inbox import Inbox, collect
from sanad.amqp.metrics import CONSUMER_CANCELLED
from sanad.amqp.outcomes import OutcomePublisher
from sanad.amqp.properties import install_lenient_decoding
from sanad.amqp.topology import Topology
from sanad.telemetry.metrics import (
    AMQP_ACKED,
    AMQP_CONSUMED,
    AMQP_DEAD_LETTERED,
    AMQP_NACKED,
    MICRO_BATCH_SIZE,
    RETRIES,
)

log = logging.getLogger("sanad.amqp.consumer")


class BrokerConnectionLost(ConnectionError):
    """The connection or channel closed under a running consumer; connect again."""


class ConsumerCancelled(Exception):
    """The broker cancelled our consumer (e.g. the queue was deleted)."""


@dataclass
class BatchOptions:
    prefetch: int = 1000
    # Items per micro-batch: a message counts once, a pack as the items its header names.
    max_messages: int = 500
    max_wait_s: float = 0.05
    max_backoff_s: float = 5.0
    max_retries: int = 10
    # A parked message's first delay, doubled at each return up to retry_delay_s.
    retry_first_delay_s: float = 0.125
    retry_delay_s: float = 2.0
    # Attempts at one message whose handling raises (not TransientError) before it is
    # dead-lettered as `handler-failed`.
    max_failures: int = 3
    # Longest wait on one broker operation: connecting and declaring, each confirmed publish
    # (reply, parked retry, dead letter), the consumer's cancel at stop. Meant to be the
    # deployable's `amqp_timeout_s` setting.
    broker_timeout_s: float = 5.0
    # How long a handler still running at stop may go on; then it is cancelled and its
    # micro-batch left unacked, to return to the queue. Meant to be `shutdown_grace_s`.
    drain_grace_s: float = 10.0


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
        on_failure: FailureHook | None = None,
    ) -> None:
        """reasons: every reason the handler dead-letters with. Each (queue, reason) counter
        starts at zero, so a rate or increase() sees the first dead letter too (a series born
        at 1 shows no increase). on_failure: told of each message about to be dead-lettered
        as `handler-failed` (sanad.amqp.handling)."""
        install_lenient_decoding()  # process-wide, before any connection: see the docstring
        self.url = url
        self.topology = topology
        self.queue_name = queue
        for reason in {*reasons, HANDLER_FAILED}:
            AMQP_DEAD_LETTERED.labels(queue, reason)
        RETRIES.labels(queue)  # at zero too: the first retry counts in increase()
        self.handler = handler
        self.handling = RetryingHandler(
            handler,
            queue,
            max_failures=options.max_failures,
            max_backoff_s=options.max_backoff_s,
            drain_grace_s=options.drain_grace_s,
            on_failure=on_failure,
        )
        self.options = options
        self.connected = False
        self.outcomes = OutcomePublisher(
            topology,
            queue,
            max_retries=options.max_retries,
            retry_first_delay_s=options.retry_first_delay_s,
            retry_delay_s=options.retry_delay_s,
            timeout_s=options.broker_timeout_s,
            on_stall=self._stalled,
        )
        self._cancelled = asyncio.Event()
        self._lost = asyncio.Event()
        self._open_now: list[object] = []  # this run's connection and channel

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until stop is set; finish and ack the current micro-batch, then close.

        Raises BrokerConnectionLost when the connection or channel closes under it.
        """
        self._lost, self.outcomes.stop = asyncio.Event(), stop
        async with asyncio.timeout(self.options.broker_timeout_s):
            # Named as the broker shows it (client property connection_name): the consumer of
            # P.ingest is found by that name, as intake's publisher is by its own.
            connection = await aio_pika.connect(
                self.url, client_properties={"connection_name": f"sanad consumer {self.queue_name}"}
            )
        try:
            self._open_now = [connection]
            connection.close_callbacks.add(self._on_close)
            async with asyncio.timeout(self.options.broker_timeout_s):
                queue, dead = await self._open(connection)
            # A delivery of this channel only: a new run() starts with a new inbox, so nothing
            # delivered on a dead channel is acked on the next one.
            inbox: Inbox = asyncio.Queue()
            tag = await queue.consume(inbox.put, timeout=self.options.broker_timeout_s)
            self.connected = True
            log.info("consuming %s", self.queue_name)
            await self._loop(inbox, dead, stop)
            if not self._cancelled.is_set() and not self._lost.is_set():
                await self._bounded(queue.cancel(tag), "cancelling the consumer")
        finally:
            self.connected = False
            self.outcomes.channel, self._open_now = None, []
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
        self.outcomes.channel = channel
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
        """Publish an answer to a reply queue on this consumer's channel, confirmed."""
        await self.outcomes.reply(reply_to, body, correlation_id, message_type)

    def _stalled(self, stalled: bool) -> None:
        """Health for a broker that stops confirming publishes (an alarm), and once it
        confirms again, for the connection as it now is."""
        if stalled:
            self.connected = False
        else:
            self.connected = not (self._lost.is_set() or self._cancelled.is_set())

    def _on_cancel(self, frame: Any) -> None:
        CONSUMER_CANCELLED.labels(self.queue_name).inc()
        log.error("the broker cancelled the consumer on %s", self.queue_name)
        self.connected = False
        self._cancelled.set()

    async def _loop(self, inbox: Inbox, dead: AbstractExchange, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self._cancelled.is_set():
            batch = await collect(inbox, stop, self.options.max_messages, self.options.max_wait_s)
            if self._lost.is_set():  # what the dead channel delivered can no longer be acked
                raise BrokerConnectionLost(f"the broker connection closed under {self.queue_name}")
            if batch:
                await self._handle(batch, dead, stop)

    async def _handle(
        self,
        batch: list[AbstractIncomingMessage],
        dead: AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        AMQP_CONSUMED.labels(self.queue_name).inc(len(batch))
        MICRO_BATCH_SIZE.labels(self.queue_name).observe(len(batch))
        outcomes = await self.handling.outcomes(batch, stop)
        if outcomes is None or not await self.outcomes.publish(batch, outcomes, dead):
            # Stopping while a dependency is down: leave the batch unacked; closing the
            # channel returns it to the queue for another worker.
            AMQP_NACKED.labels(self.queue_name).inc(len(batch))
            return
        await batch[-1].ack(multiple=True)
        AMQP_ACKED.labels(self.queue_name).inc(len(batch))
