"""Publishes BatchSubmissions to the batch exchange and waits for each BatchResult.

A batch whose items were refused (e.g. the worker's registry snapshot has not yet seen a new
centre) is sent again under a new batch id after a pause; accepted items of the first attempt
are not duplicated because a request id always yields the same transaction.
"""

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.topology import BATCH, CONTENT_TYPE, Topology
from sanad.security.batch_users import broker_user
from sanad.v1 import events_pb2

log = logging.getLogger("sanad.seed")
BATCH_TYPE = events_pb2.BatchSubmission.DESCRIPTOR.full_name


@dataclass
class LoadResult:
    """What the batch worker answered, summed over every batch."""

    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    problems: list[str] = field(default_factory=list)


class BatchLoader:
    """Keeps up to `window` batches in flight; matches replies by correlation id."""

    def __init__(
        self,
        amqp_url: str,
        prefix: str,
        *,
        window: int = 4,
        attempts: int = 20,
        retry_pause_s: float = 1.0,
        reply_timeout_s: float = 300.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.topology = Topology(prefix)
        self.window = window
        self.attempts = attempts
        self.retry_pause_s = retry_pause_s
        self.reply_timeout_s = reply_timeout_s
        self.user = broker_user(amqp_url)
        self.waiting: dict[str, asyncio.Future[events_pb2.BatchResult]] = {}

    async def load(self, batches: Iterable[events_pb2.BatchSubmission]) -> LoadResult:
        result = LoadResult()
        # A plain connection: its reply queue is server-named (amq.gen-*), which is what a batch
        # submitter's broker permissions allow; an exclusive queue would not survive a reconnect
        # anyway, and resending the same batch ids returns the stored answers.
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await self.topology.declare(channel)
            exchange = await channel.get_exchange(self.topology.batch_exchange)
            replies = await channel.declare_queue(exclusive=True, auto_delete=True)
            await replies.consume(self._on_reply, no_ack=True)
            limit = asyncio.Semaphore(self.window)

            async def one(batch: events_pb2.BatchSubmission) -> None:
                async with limit:
                    await self._submit(exchange, replies.name, batch, result)

            await asyncio.gather(*(one(batch) for batch in batches))
        return result

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self.waiting.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(events_pb2.BatchResult.FromString(message.body))

    async def _submit(
        self,
        exchange: aio_pika.abc.AbstractExchange,
        reply_to: str,
        batch: events_pb2.BatchSubmission,
        result: LoadResult,
    ) -> None:
        base = batch.batch_id
        for attempt in range(self.attempts):
            batch.batch_id = base if attempt == 0 else f"{base}-r{attempt}"
            reply = await self._round_trip(exchange, reply_to, batch)
            refused = reply.refused_reason or (
                f"{len(reply.rejected)} rejected, first: {list(reply.rejected[0].violations)}"
                if reply.rejected
                else ""
            )
            if not refused:
                result.batches += 1
                result.accepted += len(reply.accepted)
                return
            log.info("batch %s refused (%s); retrying", batch.batch_id, refused)
            result.retried += 1
            await asyncio.sleep(self.retry_pause_s)
        result.batches += 1
        result.accepted += len(reply.accepted)
        result.rejected += len(reply.rejected)
        result.problems.append(f"{base}: {refused}")

    async def _round_trip(
        self,
        exchange: aio_pika.abc.AbstractExchange,
        reply_to: str,
        batch: events_pb2.BatchSubmission,
    ) -> events_pb2.BatchResult:
        future: asyncio.Future[events_pb2.BatchResult] = asyncio.get_running_loop().create_future()
        self.waiting[batch.batch_id] = future
        message = aio_pika.Message(
            body=batch.SerializeToString(),
            content_type=CONTENT_TYPE,
            type=BATCH_TYPE,
            message_id=batch.batch_id,
            correlation_id=batch.batch_id,
            reply_to=reply_to,
            user_id=self.user,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=BATCH)
        return await asyncio.wait_for(future, timeout=self.reply_timeout_s)
