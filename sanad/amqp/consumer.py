"""Consuming in micro-batches: up to N messages or T seconds, acked only after they are handled.

The handler decides per message: done (ack) or dead (dead-letter with a
reason, then ack). A transient failure raised by the handler pauses the
consumer, backs off, and handles the same micro-batch again without acking or
dead-lettering anything, so a database outage never loses a message.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.topology import CONTENT_TYPE, REASON_HEADER, Topology
from sanad.telemetry.metrics import (
    AMQP_ACKED,
    AMQP_CONSUMED,
    AMQP_DEAD_LETTERED,
    MICRO_BATCH_SIZE,
    RETRIES,
)

log = logging.getLogger("sanad.amqp.consumer")


class TransientError(Exception):
    """A dependency failed in a way that may pass; handle the batch again later."""


@dataclass(frozen=True)
class Dead:
    """Dead-letter this message: reason is a short label, detail a human sentence."""

    reason: str
    detail: str


Outcome = Dead | None
Handler = Callable[[Sequence[AbstractIncomingMessage]], Awaitable[Sequence[Outcome]]]


@dataclass
class BatchOptions:
    prefetch: int = 1000
    max_messages: int = 500
    max_wait_s: float = 0.05
    max_backoff_s: float = 5.0


class MicroBatchConsumer:
    """Consumes one work queue until stopped; one handler call per micro-batch."""

    def __init__(
        self, url: str, topology: Topology, queue: str, handler: Handler, options: BatchOptions
    ) -> None:
        self.url = url
        self.topology = topology
        self.queue_name = queue
        self.handler = handler
        self.options = options
        self.connected = False
        self.last_batch_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until stop is set; finish and ack the current micro-batch, then close."""
        connection = await aio_pika.connect_robust(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await self.topology.declare(channel)
            await channel.set_qos(prefetch_count=self.options.prefetch)
            queue = await channel.get_queue(self.queue_name, ensure=False)
            dead = await channel.get_exchange(self.topology.dead_exchange, ensure=False)
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            tag = await queue.consume(inbox.put)
            self.connected = True
            log.info("consuming %s", self.queue_name)
            await self._loop(inbox, dead, stop)
            await queue.cancel(tag)
        finally:
            self.connected = False
            await connection.close()

    async def _loop(
        self,
        inbox: asyncio.Queue[AbstractIncomingMessage],
        dead: aio_pika.abc.AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        while not stop.is_set():
            batch = await self._collect(inbox, stop)
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
        deadline = time.monotonic() + self.options.max_wait_s
        while len(batch) < self.options.max_messages and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(inbox.get(), timeout=remaining))
            except TimeoutError:
                break
        return batch

    async def _handle(
        self,
        batch: list[AbstractIncomingMessage],
        dead: aio_pika.abc.AbstractExchange,
        stop: asyncio.Event,
    ) -> None:
        AMQP_CONSUMED.labels(self.queue_name).inc(len(batch))
        MICRO_BATCH_SIZE.labels(self.queue_name).observe(len(batch))
        delay = 0.1
        while True:
            try:
                outcomes = await self.handler(batch)
                break
            except TransientError as error:
                RETRIES.labels(self.queue_name).inc()
                log.warning("transient failure, retrying micro-batch in %.1fs: %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_backoff_s)
        for message, outcome in zip(batch, outcomes, strict=True):
            if outcome is not None:
                await self._dead_letter(message, outcome, dead)
        await batch[-1].ack(multiple=True)
        AMQP_ACKED.labels(self.queue_name).inc(len(batch))
        self.last_batch_at = time.monotonic()

    async def _dead_letter(
        self, message: AbstractIncomingMessage, outcome: Dead, dead: aio_pika.abc.AbstractExchange
    ) -> None:
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = outcome.reason
        headers["x-sanad-detail"] = outcome.detail[:500]
        headers["x-sanad-queue"] = self.queue_name
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type or CONTENT_TYPE,
            type=message.type,
            message_id=message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await dead.publish(copy, routing_key=self.queue_name, mandatory=True)
        AMQP_DEAD_LETTERED.labels(self.queue_name, outcome.reason).inc()
        log.warning(
            "dead-lettered a message",
            extra={"reason": outcome.reason, "detail": outcome.detail, "queue": self.queue_name},
        )
