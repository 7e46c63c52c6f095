"""Every exchange and queue, named from one prefix and declared idempotently at start.

Naming scheme (prefix P, "sanad" by default; SANAD_AMQP_PREFIX):
  P.transactions   direct exchange where intake publishes; routing keys transaction.submitted,
                   transaction.status, transaction.rated
  P.ingest         quorum work queue of the ingest worker, bound to all three keys
  P.batch          direct exchange (routing key batch.submit) and quorum work queue of batch
                   submissions, answered on the submitter's reply_to queue
  P.dead           direct exchange for dead letters; routing key = the work queue's full name
  P.<queue>.dead   one quorum dead-letter queue per work queue; reason in header x-sanad-reason,
                   human detail in x-sanad-detail
  P.<queue>.retry  one delayed-retry queue per work queue: a message parked here (e.g. a
                   status change that arrived before its transaction) expires after the
                   worker's retry delay (per-message expiration), then is dead-lettered through
                   the default exchange straight back into P.<queue>; header x-sanad-retries
                   counts the round trips, and the worker dead-letters the message once it
                   exceeds its bound

Work queues are quorum queues with x-delivery-limit, so a message that crashes its worker again
and again is dead-lettered by the broker after that many deliveries.
"""

import contextlib
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel

SUBMITTED = "transaction.submitted"
STATUS_CHANGED = "transaction.status"
RATED = "transaction.rated"
BATCH = "batch.submit"

REASON_HEADER = "x-sanad-reason"
DETAIL_HEADER = "x-sanad-detail"
# On a dead letter: the work queue it was set aside from.
QUEUE_HEADER = "x-sanad-queue"
RETRIES_HEADER = "x-sanad-retries"
# On a pack (sanad.amqp.packing): how many items it carries.
ITEMS_HEADER = "x-sanad-items"
CONTENT_TYPE = "application/x-protobuf"


@dataclass(frozen=True)
class Topology:
    """The names of everything under one prefix."""

    prefix: str = "sanad"
    delivery_limit: int = 5

    @property
    def transactions_exchange(self) -> str:
        return f"{self.prefix}.transactions"

    @property
    def batch_exchange(self) -> str:
        return f"{self.prefix}.batch"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def ingest_queue(self) -> str:
        return f"{self.prefix}.ingest"

    @property
    def batch_queue(self) -> str:
        return f"{self.prefix}.batch"

    def dead_queue(self, work_queue: str) -> str:
        """The dead-letter queue of a work queue."""
        return f"{work_queue}.dead"

    def retry_queue(self, work_queue: str) -> str:
        """The delayed-retry queue of a work queue."""
        return f"{work_queue}.retry"

    def all_queues(self) -> list[str]:
        """Every queue under this prefix, for tidy-up and inspection."""
        names: list[str] = []
        for work in self.work_queues():
            names += [work, self.dead_queue(work), self.retry_queue(work)]
        return names

    def work_queues(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each work queue with the exchange and routing keys it is bound to."""
        return {
            self.ingest_queue: (self.transactions_exchange, (SUBMITTED, STATUS_CHANGED, RATED)),
            self.batch_queue: (self.batch_exchange, (BATCH,)),
        }

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare exchanges, work queues, dead-letter and retry queues; safe to repeat."""
        dead = await channel.declare_exchange(
            self.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for queue_name, (exchange_name, keys) in self.work_queues().items():
            exchange = await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            queue = await channel.declare_queue(
                queue_name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": self.delivery_limit,
                    "x-dead-letter-exchange": self.dead_exchange,
                    "x-dead-letter-routing-key": queue_name,
                },
            )
            for key in keys:
                await queue.bind(exchange, key)
            dead_queue = await channel.declare_queue(
                self.dead_queue(queue_name), durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dead_queue.bind(dead, queue_name)
            await channel.declare_queue(
                self.retry_queue(queue_name),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    # Each parked message carries its own expiration (the worker's retry
                    # delay), so workers with other settings never conflict here.
                    # The default exchange routes by queue name: straight back to the work queue.
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue_name,
                },
            )


async def delete_queues(amqp_url: str, prefix: str) -> None:
    """Delete every queue under a prefix (tests and benchmarks tidy up their quorum queues:
    hundreds of idle ones slow a small broker down); queues already gone are skipped."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in Topology(prefix).all_queues():
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
