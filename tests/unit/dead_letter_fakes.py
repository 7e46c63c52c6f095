"""An in-memory broker for passes over dead-letter queues (sanad.amqp.dead_letter_pass): queues
of messages taken one by one with basic.get, acked, handed back, and published to, confirmed,
refused (a full queue's nack) or never confirmed (an alarm)."""

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity, DeliveryError

from sanad.amqp import dead_letter_pass
from sanad.amqp.topology import REASON_HEADER

ACCEPT, REFUSE, NEVER_CONFIRM = "accept", "refuse", "never confirm"


@dataclass
class Stored:
    """A message in a fake queue; deliveries counts its returns, as a quorum queue does."""

    body: bytes
    headers: dict[str, Any]
    message_id: str
    type: str = "sanad.v1.TransactionSubmitted"
    expiration: float | None = None
    deliveries: int = 0


@dataclass
class FakeBroker:
    """Queues by name, what each does with a publish, and the acks and nacks it was given."""

    queues: dict[str, list[Stored]] = field(default_factory=dict)
    publishes: dict[str, str] = field(default_factory=dict)
    acked: list[str] = field(default_factory=list)
    nacked: list[str] = field(default_factory=list)
    # Queues bounded in length (x-max-length with reject-publish): a publish past it is refused.
    max_length: dict[str, int] = field(default_factory=dict)
    # Publishes confirmed before an alarm blocks every later one (None: no alarm).
    alarm_after: int | None = None
    confirmed: int = 0

    def letters(self, queue: str, *reasons_and_ids: tuple[str, str]) -> None:
        """Fill a dead-letter queue with letters of these (reason, message id)."""
        self.queues.setdefault(queue, []).extend(
            Stored(f"body of {id_}".encode(), {REASON_HEADER: reason}, id_)
            for reason, id_ in reasons_and_ids
        )

    def ids(self, queue: str) -> list[str]:
        return [stored.message_id for stored in self.queues[queue]]


def install(monkeypatch: pytest.MonkeyPatch, broker: FakeBroker) -> None:
    """Make every pass connect to `broker`."""

    async def connect(url: str, timeout_s: float) -> "Connection":
        del url, timeout_s
        return Connection(broker)

    monkeypatch.setattr(dead_letter_pass, "connect", connect)


class Connection:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.unsettled: list[tuple[str, Stored]] = []

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *_: object) -> None:
        # A closed connection hands back what it held, at the head, counting a delivery.
        for queue, stored in reversed(self.unsettled):
            stored.deliveries += 1
            self.broker.queues[queue].insert(0, stored)

    async def channel(self, **_: Any) -> "Channel":
        return Channel(self)


class Channel:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.default_exchange = Exchange(connection.broker)

    async def declare_queue(self, name: str, passive: bool = False) -> "Queue":
        assert passive
        if name not in self.connection.broker.queues:
            raise ChannelNotFoundEntity(f"NOT_FOUND - no queue '{name}'")
        return Queue(self.connection, name)


class Exchange:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def publish(self, message: aio_pika.Message, routing_key: str, **_: Any) -> None:
        behaviour = self.broker.publishes.get(routing_key, ACCEPT)
        if self.broker.alarm_after is not None and self.broker.confirmed >= self.broker.alarm_after:
            behaviour = NEVER_CONFIRM
        if len(self.broker.queues[routing_key]) >= self.broker.max_length.get(routing_key, 10**9):
            behaviour = REFUSE
        if behaviour == NEVER_CONFIRM:
            await asyncio.Event().wait()
        if behaviour == REFUSE:
            raise DeliveryError(None, aiormq.spec.Basic.Nack())
        self.broker.confirmed += 1
        expiration = message.expiration
        self.broker.queues[routing_key].append(
            Stored(
                message.body,
                dict(message.headers or {}),
                message.message_id or "",
                message.type or "",
                float(expiration) if expiration is not None else None,  # type: ignore[arg-type]
            )
        )


class Queue:
    def __init__(self, connection: Connection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.declaration_result = SimpleNamespace(message_count=len(connection.broker.queues[name]))

    async def get(self, **_: Any) -> "Incoming | None":
        queue = self.connection.broker.queues[self.name]
        if not queue:
            return None
        stored = queue.pop(0)
        self.connection.unsettled.append((self.name, stored))
        return Incoming(self.connection, self.name, stored)


class Incoming:
    """A message taken with basic.get, as aio-pika gives it."""

    def __init__(self, connection: Connection, queue: str, stored: Stored) -> None:
        self.connection = connection
        self.queue = queue
        self.stored = stored
        self.body = stored.body
        self.headers = stored.headers
        self.type = stored.type
        self.message_id = stored.message_id
        self.expiration = stored.expiration
        self.content_type = "application/x-protobuf"
        self.correlation_id = self.reply_to = self.timestamp = self.user_id = None

    async def ack(self) -> None:
        self.connection.unsettled.remove((self.queue, self.stored))
        self.connection.broker.acked.append(self.message_id)

    async def nack(self, requeue: bool = True) -> None:
        assert requeue
        self.connection.unsettled.remove((self.queue, self.stored))
        self.stored.deliveries += 1
        self.connection.broker.queues[self.queue].insert(0, self.stored)
        self.connection.broker.nacked.append(self.message_id)
