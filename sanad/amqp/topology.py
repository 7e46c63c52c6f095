"""Every exchange and queue, named from one prefix and declared idempotently at start.

Naming scheme (prefix P, "sanad" by default):
  P.transactions   direct exchange where intake publishes; routing keys below
  P.ingest         quorum work queue of the ingest worker (submitted, status, rated)
  P.batch          direct exchange and quorum work queue of batch submissions
  P.dead           direct exchange for dead letters; routing key = work queue's short name
  P.<queue>.dead   one dead-letter queue per work queue, reason in header x-sanad-reason
"""

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel

SUBMITTED = "transaction.submitted"
STATUS_CHANGED = "transaction.status"
RATED = "transaction.rated"
BATCH = "batch.submit"

REASON_HEADER = "x-sanad-reason"
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

    def work_queues(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each work queue with the exchange and routing keys it is bound to."""
        return {
            self.ingest_queue: (self.transactions_exchange, (SUBMITTED, STATUS_CHANGED, RATED)),
            self.batch_queue: (self.batch_exchange, (BATCH,)),
        }

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare exchanges, work queues and dead-letter queues; safe to repeat."""
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
