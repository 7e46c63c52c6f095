"""Every exchange and queue, named from one prefix and declared idempotently at start.

Naming scheme (prefix P, "sanad" by default; SANAD_AMQP_PREFIX):
  P.transactions   direct exchange where intake publishes; routing keys transaction.submitted,
                   transaction.status, transaction.rated
  P.ingest         quorum work queue of the ingest worker, bound to all three keys
  P.batch          direct exchange (routing key batch.submit) and quorum work queue of batch
                   submissions, answered on the submitter's reply_to queue
  P.dead           direct exchange for dead letters; routing key = the work queue's full name
  P.<queue>.dead   one quorum dead-letter queue per work queue, with no delivery limit
                   (UNLIMITED_DELIVERIES); reason in header x-sanad-reason,
                   human detail in x-sanad-detail; a batch refused whole (answered or
                   not) carries a per-message expiration and x-sanad-expires-at (clear civil
                   numbers are not kept for good), every other letter stays until taken
  P.<queue>.retry  one delayed-retry queue per work queue: a message parked here (e.g. a
                   status change that arrived before its transaction) expires after its
                   delay (per-message expiration, doubling from the worker's first retry delay
                   to its retry delay), then is dead-lettered through the default exchange
                   straight back into P.<queue>; the broker expires only the message at the
                   queue's head, so a short delay parked behind a longer one ends with it.
                   Header x-sanad-retries counts the round trips, and the worker dead-letters
                   the message once it exceeds its bound

Work queues are quorum queues with x-delivery-limit (DELIVERY_LIMIT), so a message that crashes
its worker again and again is dead-lettered by the broker after that many deliveries. Messages a
handler fails on are dead-lettered by the worker itself, with a reason (sanad.amqp.handling), so
the broker's limit is only the backstop for crash loops, and it counts every return of an
unacknowledged message: each worker stop, restart or lost connection returns what the worker
held. A low limit (5, before) then dead-lettered good messages that a database outage kept
unacknowledged across a few restarts.

Work and retry queues dead-letter at least once (AT_LEAST_ONCE, RabbitMQ 3.10+): the broker keeps
a dead letter in its source queue until the target queue confirms it, and retries while the
target is missing, unroutable or without a leader, so a poison message or a parked status change
is never dropped on the way; the target may see a duplicate (workers upsert, so that is harmless).
A queue that an earlier release declared without these arguments, or with the earlier delivery
limit, cannot be re-declared with them (406 PRECONDITION_FAILED): declare() then keeps it as it
is and logs a warning. The deploy policies sanad-work-queues and sanad-retry-queues give it the
same strategy, but only a queue declared anew gets the higher delivery limit (the broker takes
the lower of a queue's own and its policy's).
"""

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

SUBMITTED = "transaction.submitted"
STATUS_CHANGED = "transaction.status"
RATED = "transaction.rated"
BATCH = "batch.submit"

REASON_HEADER = "x-sanad-reason"
DETAIL_HEADER = "x-sanad-detail"
# On a dead letter: the work queue it was set aside from.
QUEUE_HEADER = "x-sanad-queue"
RETRIES_HEADER = "x-sanad-retries"
# On a parked message: where what it waits for stood when it was parked (verdicts.Retry); a
# later park that finds it moved on counts its retries from the start again.
WAITING_AT_HEADER = "x-sanad-waiting-at"
# On a pack (sanad.amqp.packing): how many items it carries.
ITEMS_HEADER = "x-sanad-items"
CONTENT_TYPE = "application/x-protobuf"

# Arguments of every queue that dead-letters (work and retry queues): RabbitMQ (3.10+) keeps a
# dead letter in its quorum source queue until the target queue confirms it, and retries one
# it cannot route yet (every dead_letter_worker_publisher_confirm_timeout, 3 minutes by
# default, and at once when the source queue's policy changes). The default at-most-once
# strategy drops it instead. At-least-once needs reject-publish overflow (with drop-head the
# broker falls back to at-most-once); without a length limit, reject-publish rejects nothing.
# The deploy policies set the same keys (without "x-") on queues declared before.
AT_LEAST_ONCE: dict[str, Any] = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}

# Deliveries of one message a work queue allows (RabbitMQ 4.0's default for quorum queues).
DELIVERY_LIMIT = 20
# A dead-letter queue's delivery limit on RabbitMQ 4.0+: none. 4.0 gives every quorum queue a
# limit of 20 unless it is declared with -1 (or given another by a policy), and a dead-letter
# queue has no dead-letter exchange, so a letter past it would be dropped: a `sanadctl
# dead-letters` pass that can move a letter neither on nor back hands it back, one delivery.
# RabbitMQ 3.x has no default limit, and takes -1 as one that drops a letter at its first
# return: there a dead-letter queue is declared without the argument.
UNLIMITED_DELIVERIES = -1
# Delivery limits earlier releases declared work queues with, which declare() keeps (warning).
EARLIER_DELIVERY_LIMITS = (5,)

log = logging.getLogger(__name__)
# Queues of an earlier release this process has warned about (_declare_dead_lettering).
_WARNED_EARLIER: set[str] = set()


@dataclass(frozen=True)
class Topology:
    """The names of everything under one prefix."""

    prefix: str = "sanad"
    delivery_limit: int = DELIVERY_LIMIT

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

    def all_exchanges(self) -> list[str]:
        """Every exchange under this prefix, for tidy-up."""
        return [self.transactions_exchange, self.batch_exchange, self.dead_exchange]

    def work_queues(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each work queue with the exchange and routing keys it is bound to."""
        return {
            self.ingest_queue: (self.transactions_exchange, (SUBMITTED, STATUS_CHANGED, RATED)),
            self.batch_queue: (self.batch_exchange, (BATCH,)),
        }

    def work_queue_arguments(self, work_queue: str) -> dict[str, Any]:
        """A work queue's arguments: delivery limit, dead letters to P.dead, at least once."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": work_queue,
            **AT_LEAST_ONCE,
        }

    def retry_queue_arguments(self, work_queue: str) -> dict[str, Any]:
        """A retry queue's arguments: expired messages go back to the work queue, at least once."""
        return {
            "x-queue-type": "quorum",
            # Each parked message carries its own expiration (the worker's retry delay), so
            # workers with other settings never conflict here.
            # The default exchange routes by queue name: straight back to the work queue.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": work_queue,
            **AT_LEAST_ONCE,
        }

    def dead_queue_arguments(self, server_version: str) -> dict[str, Any]:
        """A dead-letter queue's arguments on a broker of that version: no delivery limit."""
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if _major(server_version) >= 4:
            arguments["x-delivery-limit"] = UNLIMITED_DELIVERIES
        return arguments

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare exchanges, work queues, dead-letter and retry queues; safe to repeat.

        A work or retry queue that an earlier release declared with at-most-once dead-lettering
        is used as it is, with a warning (see _declare_dead_lettering); so is a dead-letter
        queue declared before it had no delivery limit (see _declare_dead_queue).
        """
        dead = await channel.declare_exchange(
            self.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead_arguments = self.dead_queue_arguments(await _server_version(channel))
        for queue_name, (exchange_name, keys) in self.work_queues().items():
            exchange = await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            queue = await _declare_dead_lettering(
                channel, queue_name, self.work_queue_arguments(queue_name)
            )
            for key in keys:
                await queue.bind(exchange, key)
            dead_queue = await _declare_dead_queue(
                channel, self.dead_queue(queue_name), dead_arguments
            )
            await dead_queue.bind(dead, queue_name)
            await _declare_dead_lettering(
                channel, self.retry_queue(queue_name), self.retry_queue_arguments(queue_name)
            )


async def _declare_dead_lettering(
    channel: AbstractChannel, name: str, arguments: dict[str, Any]
) -> AbstractQueue:
    """Declare a queue that dead-letters; one an earlier release declared (without
    AT_LEAST_ONCE, or with an earlier delivery limit) is kept as it is, with a warning, instead
    of failing the start.

    RabbitMQ answers a declaration whose arguments differ from the queue's with 406
    PRECONDITION_FAILED and closes the channel. So each declaration is tried first on a channel
    of its own, and the caller's channel only ever repeats one that succeeded there (a robust
    channel repeats it again after a reconnect). The fallback is taken only when the queue
    exists with exactly an earlier release's arguments; any other difference (another queue
    type, another delivery limit) still raises.
    """
    try:
        await _declare_aside(channel, name, arguments)
    except ChannelPreconditionFailed as refused:
        for earlier in _earlier_arguments(arguments):
            try:
                await _declare_aside(channel, name, earlier, existing=True)
            except (ChannelPreconditionFailed, ChannelNotFoundEntity) as different:
                last = different
                continue
            _warn_earlier(name, earlier, arguments)
            arguments = earlier
            break
        else:
            raise refused from last
    return await channel.declare_queue(name, durable=True, arguments=arguments)


async def _declare_dead_queue(
    channel: AbstractChannel, name: str, arguments: dict[str, Any]
) -> AbstractQueue:
    """Declare a dead-letter queue; one an earlier release declared, with the broker's default
    delivery limit, is kept as it is with a warning (as in _declare_dead_lettering)."""
    if "x-delivery-limit" in arguments:
        try:
            await _declare_aside(channel, name, arguments)
        except ChannelPreconditionFailed:
            earlier = {k: v for k, v in arguments.items() if k != "x-delivery-limit"}
            await _declare_aside(channel, name, earlier, existing=True)  # else it still raises
            level = logging.DEBUG if name in _WARNED_EARLIER else logging.WARNING
            _WARNED_EARLIER.add(name)
            log.log(
                level,
                "queue %s keeps RabbitMQ's default delivery limit (20 since 4.0; this release "
                "declares none): a letter that `sanadctl dead-letters` "
                "fails to move that many times is dropped; delete it once it is empty (replay or "
                "drop its letters with sanadctl dead-letters) and restart to have it declared anew",
                name,
            )
            arguments = earlier
    return await channel.declare_queue(name, durable=True, arguments=arguments)


async def _server_version(channel: AbstractChannel) -> str:
    """The broker's version as it announced it ("4.1.0"); empty when it did not."""
    connection = (await channel.get_underlay_channel()).connection
    version = (connection.server_properties or {}).get("version", "")
    return version.decode() if isinstance(version, bytes) else str(version)


def _major(version: str) -> int:
    """The major number of a version ("3.10.8" -> 3); 0 when it does not read as one."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _earlier_arguments(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The arguments earlier releases declared a queue with, latest first: a work queue with an
    earlier delivery limit, then also without AT_LEAST_ONCE; a retry queue without it."""
    before_at_least_once = {k: v for k, v in arguments.items() if k not in AT_LEAST_ONCE}
    if "x-delivery-limit" not in arguments:
        return [before_at_least_once]
    found = []
    for limit in EARLIER_DELIVERY_LIMITS:
        if limit != arguments["x-delivery-limit"]:
            found.append({**arguments, "x-delivery-limit": limit})
            found.append({**before_at_least_once, "x-delivery-limit": limit})
    # The release before at-least-once, at this limit (one set by hand: Topology.delivery_limit).
    return [*found, before_at_least_once]


def _warn_earlier(name: str, earlier: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Say what a queue kept from an earlier release costs; once per queue and process (a
    robust channel declares again at every reconnect)."""
    level = logging.DEBUG if name in _WARNED_EARLIER else logging.WARNING
    _WARNED_EARLIER.add(name)
    costs = []
    if any(key not in earlier for key in AT_LEAST_ONCE):
        costs.append(
            "was declared before at-least-once dead-lettering: unless a policy sets "
            "dead-letter-strategy=at-least-once and overflow=reject-publish on it (the deploy "
            "policies sanad-work-queues and sanad-retry-queues do), a dead letter whose target "
            "is missing or has no leader is dropped"
        )
    if earlier.get("x-delivery-limit") != arguments.get("x-delivery-limit"):
        costs.append(
            f"keeps its delivery limit of {earlier['x-delivery-limit']} (this release declares "
            f"{arguments['x-delivery-limit']}; a policy cannot raise it): every worker stop or "
            "lost connection while a message is unacknowledged counts, so a database outage "
            "across a few restarts can dead-letter good messages (replay them with sanadctl "
            "dead-letters replay)"
        )
    log.log(
        level,
        "queue %s %s; delete the queue while it is empty and restart to have it declared "
        "with the new arguments",
        name,
        ", and ".join(costs),
    )


async def _declare_aside(
    channel: AbstractChannel, name: str, arguments: dict[str, Any], *, existing: bool = False
) -> None:
    """Declare a queue on a channel of its own on channel's connection, which a refusal
    closes; with existing, a missing queue raises ChannelNotFoundEntity instead of being made."""
    connection = (await channel.get_underlay_channel()).connection
    aside = await connection.channel(publisher_confirms=False)
    try:
        if existing:
            await aside.queue_declare(name, passive=True)
        await aside.queue_declare(name, durable=True, arguments=arguments)
    finally:
        if not aside.is_closed:
            await aside.close()


async def delete_topology(amqp_url: str, prefix: str) -> None:
    """Delete every queue and exchange under a prefix (tests and benchmarks tidy up after
    themselves: hundreds of idle quorum queues slow a small broker down, and each run would
    leave its exchanges behind); those already gone are skipped."""
    topology = Topology(prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in topology.all_queues():
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
        for name in topology.all_exchanges():
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(name)
