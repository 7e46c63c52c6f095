"""A broker that stops confirming (a memory or disk alarm blocks publishers) never hangs the
consumer unseen: health goes NOT_SERVING, the publish is waited for rather than sent again, and
a stop gives up on it leaving the micro-batch unacked."""

import asyncio
from typing import Any

import pytest

from sanad.amqp.consumer import BatchOptions, BrokerConnectionLost, MicroBatchConsumer
from sanad.amqp.handling import BROKER_ERRORS
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Dead, Outcome, Retry, TransientError
from tests.unit.waiting import until

TIMEOUT_S = 0.05


class Delivery:
    """An incoming message: what republishing reads, and its acks."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers: dict[str, Any] = {}
        self.user_id = None
        self.type = "sanad.v1.Thing"
        self.message_id = body.decode()
        self.content_type = None
        self.correlation_id = None
        self.reply_to = None
        self.timestamp = None
        self.acks: list[bool] = []

    async def ack(self, multiple: bool = False) -> None:
        self.acks.append(multiple)


class HeldExchange:
    """Publishes whose confirms the test releases (or never does)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []
        self.confirms: list[asyncio.Future[None]] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool = True) -> None:
        self.sent.append((message.body, routing_key))
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.confirms.append(confirm)
        await confirm


def consumer_answering(*outcomes: Outcome) -> MicroBatchConsumer:
    async def handler(batch: Any) -> list[Outcome]:
        return list(outcomes)

    options = BatchOptions(broker_timeout_s=TIMEOUT_S, max_backoff_s=0.01)
    consumer = MicroBatchConsumer("amqp://unused", Topology("t"), "t.ingest", handler, options)
    consumer.connected = True  # as run() leaves it once consuming
    return consumer


@pytest.mark.parametrize(
    "outcome", [Dead("invalid", "not a transaction"), Retry("not-yet", "no transaction")]
)
async def test_a_publish_the_broker_never_confirms_leaves_the_batch_unacked_at_stop(
    outcome: Outcome,
) -> None:
    consumer = consumer_answering(outcome)
    exchange = HeldExchange()
    consumer.outcomes.channel = type("Channel", (), {"default_exchange": exchange})()
    message, stop = Delivery(b"m1"), asyncio.Event()
    consumer.outcomes.stop = stop
    handling = asyncio.create_task(consumer._handle([message], exchange, stop))  # type: ignore[list-item, arg-type]

    await until(lambda: not consumer.connected)  # NOT_SERVING while blocked
    stop.set()

    await asyncio.wait_for(handling, 2.0)
    assert message.acks == []  # returns to the queue when the channel closes
    assert len(exchange.sent) == 1  # waited for, never sent again


async def test_a_publish_confirmed_late_is_sent_once_and_the_batch_acked() -> None:
    consumer = consumer_answering(Dead("invalid", "not a transaction"))
    exchange = HeldExchange()
    message, stop = Delivery(b"m1"), asyncio.Event()
    handling = asyncio.create_task(consumer._handle([message], exchange, stop))  # type: ignore[list-item, arg-type]

    await until(lambda: not consumer.connected)
    await asyncio.sleep(TIMEOUT_S * 4)  # several timeouts pass while the alarm lasts
    exchange.confirms[0].set_result(None)

    await asyncio.wait_for(handling, 2.0)
    assert exchange.sent == [(b"m1", "t.ingest")]
    assert message.acks == [True]
    assert consumer.connected  # SERVING again once the broker confirms


async def test_a_reply_the_broker_never_confirms_is_a_transient_failure_at_stop() -> None:
    consumer = consumer_answering()
    exchange = HeldExchange()
    consumer.outcomes.channel = type("Channel", (), {"default_exchange": exchange})()
    stop = asyncio.Event()
    consumer.outcomes.stop = stop
    replying = asyncio.create_task(consumer.reply("amq.gen-1", b"answer", "c1", "sanad.v1.R"))

    await until(lambda: not consumer.connected)
    stop.set()

    with pytest.raises(TransientError):
        await asyncio.wait_for(replying, 2.0)
    assert exchange.sent == [(b"answer", "amq.gen-1")]


async def test_deliveries_of_a_closed_channel_are_not_handled_and_the_consumer_reconnects() -> None:
    calls: list[int] = []

    async def handler(batch: Any) -> list[Outcome]:
        calls.append(len(batch))
        return [None] * len(batch)

    options = BatchOptions(broker_timeout_s=TIMEOUT_S)
    consumer = MicroBatchConsumer("amqp://unused", Topology("t"), "t.ingest", handler, options)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    message = Delivery(b"m1")
    inbox.put_nowait(message)
    connection = object()
    consumer._open_now = [connection]
    consumer._on_close(connection, ConnectionResetError())  # the connection's close callback

    with pytest.raises(BrokerConnectionLost):
        await asyncio.wait_for(consumer._loop(inbox, HeldExchange(), asyncio.Event()), 2.0)  # type: ignore[arg-type]
    assert calls == []
    assert message.acks == []
    assert not consumer.connected
    assert issubclass(BrokerConnectionLost, BROKER_ERRORS)  # consume_until_stopped reconnects


async def test_a_late_close_of_an_earlier_runs_connection_is_ignored() -> None:
    consumer = consumer_answering()
    consumer._open_now = [object()]  # this run's connection

    consumer._on_close(object(), ConnectionResetError())  # one an earlier run gave up closing

    assert consumer.connected
    assert not consumer._lost.is_set()
