"""The confirmed publisher refuses fast: no connection, a blocked broker, no time left, a confirm
failed by a closing connection, a message the broker returns or nacks (with its reason); and it
leaves no connection behind when connecting fails."""

import asyncio
from types import SimpleNamespace

import aio_pika
import aiormq
import pytest
from aiormq.base import FutureStore
from prometheus_client import REGISTRY

from sanad.amqp.packing import PackingPublisher
from sanad.amqp.publisher import ConfirmedPublisher, _is_blocked
from sanad.amqp.topology import CONTENT_TYPE, Topology
from sanad.errors import Unavailable


def fake_connection(unblocked: asyncio.Event) -> SimpleNamespace:
    amqp = SimpleNamespace(_Connection__connection_unblocked=unblocked)
    return SimpleNamespace(transport=SimpleNamespace(connection=amqp), is_closed=False)


async def test_a_publisher_without_a_connection_refuses_at_once() -> None:
    # At once, not after the confirm timeout: an hour's timeout that a wait would run into, and
    # a bound far below it that turns such a wait into a TimeoutError instead of Unavailable.
    publisher = ConfirmedPublisher("amqp://guest:guest@127.0.0.1:1/", Topology("t"), 3600.0)
    with pytest.raises(Unavailable, match="unavailable"):
        await asyncio.wait_for(
            publisher.publish("x", "k", b"", message_type="t", message_id="1"), 30
        )


async def test_a_broker_blocking_publishers_makes_the_publisher_unhealthy() -> None:
    unblocked = asyncio.Event()
    connection = fake_connection(unblocked)
    assert _is_blocked(connection)  # type: ignore[arg-type]
    unblocked.set()
    assert not _is_blocked(connection)  # type: ignore[arg-type]
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"))
    publisher._connection = fake_connection(asyncio.Event())  # type: ignore[assignment]
    publisher._channel = SimpleNamespace(is_closed=False)  # type: ignore[assignment]
    assert not publisher.is_healthy()
    with pytest.raises(Unavailable):
        await publisher.publish("x", "k", b"", message_type="t", message_id="1")


async def test_no_time_left_of_the_callers_deadline_is_unavailable_not_a_full_wait() -> None:
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"))
    unblocked = asyncio.Event()
    unblocked.set()
    publisher._connection = fake_connection(unblocked)  # type: ignore[assignment]
    publisher._channel = SimpleNamespace(is_closed=False)  # type: ignore[assignment]
    with pytest.raises(Unavailable, match="deadline"):
        await publisher.publish("x", "k", b"", message_type="t", message_id="1", timeout_s=0.0)


class RecordingChannel:
    """The aiormq channel under the robust one: records what basic_publish was given."""

    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []

    async def get_underlay_channel(self) -> "RecordingChannel":
        return self

    async def basic_publish(self, body: bytes, **options: object) -> None:
        self.published.append({"body": body, **options})


async def test_a_publish_is_mandatory_persistent_and_labelled_on_the_wire() -> None:
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"))
    unblocked = asyncio.Event()
    unblocked.set()
    channel = RecordingChannel()
    publisher._connection = fake_connection(unblocked)  # type: ignore[assignment]
    publisher._channel = channel  # type: ignore[assignment]
    channel.is_closed = False  # type: ignore[attr-defined]
    await publisher.publish(
        "t.transactions", "transaction.submitted", b"event", message_type="T", message_id="id-1"
    )
    [sent] = channel.published
    properties = sent["properties"]
    assert (sent["body"], sent["exchange"], sent["routing_key"], sent["mandatory"]) == (
        b"event",
        "t.transactions",
        "transaction.submitted",
        True,
    )
    assert properties.delivery_mode == 2  # type: ignore[attr-defined]
    assert (properties.message_id, properties.message_type) == ("id-1", "T")  # type: ignore[attr-defined]
    assert properties.content_type == CONTENT_TYPE  # type: ignore[attr-defined]


class ReturningChannel(RecordingChannel):
    """A broker that returns the message: no queue is bound to its routing key."""

    async def basic_publish(self, body: bytes, **options: object) -> None:
        frame = aiormq.spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE")
        returned = SimpleNamespace(delivery=frame)
        raise aiormq.exceptions.PublishError(returned, frame)  # type: ignore[arg-type]


class NackingChannel(RecordingChannel):
    """A broker that nacks the message: its queue is full (reject-publish) or has no leader."""

    async def basic_publish(self, body: bytes, **options: object) -> None:
        frame = aiormq.spec.Basic.Nack(delivery_tag=1)
        raise aiormq.exceptions.DeliveryError(None, frame)


def refused(exchange: str) -> float:
    labels = {"exchange": exchange, "outcome": "refused"}
    return REGISTRY.get_sample_value("sanad_amqp_published_total", labels) or 0.0


@pytest.mark.parametrize(
    ("channel", "why"),
    [
        (ReturningChannel, "refused the message: no queue is bound to take it"),
        (NackingChannel, "refused the message: its queue is full .* or has no leader"),
    ],
)
async def test_a_message_the_broker_refuses_is_unavailable_with_its_reason_never_ok(
    channel: type[RecordingChannel], why: str
) -> None:
    refusing = channel()
    refusing.is_closed = False  # type: ignore[attr-defined]
    publisher = publisher_on(refusing)
    before = refused("t.transactions")
    with pytest.raises(Unavailable, match=why):
        await publisher.publish("t.transactions", "nowhere", b"", message_type="T", message_id="2")
    assert refused("t.transactions") == before + 1


class UnconfirmedChannel(RecordingChannel):
    """aiormq's channel with publisher confirms: basic_publish waits for the broker's confirm.

    Its confirms live in aiormq's own FutureStore, so close() rejects them exactly as closing
    a connection with aiormq's default exc (CancelledError), or force-closing it, does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.is_closed = False
        self.confirms = FutureStore(asyncio.get_running_loop())

    async def basic_publish(self, body: bytes, **options: object) -> None:
        await super().basic_publish(body, **options)
        await self.confirms.create_future()

    async def close(self, exc: type[BaseException] | None = asyncio.CancelledError) -> None:
        await self.confirms.reject_all(exc)


def publisher_on(channel: RecordingChannel, timeout_s: float = 60.0) -> ConfirmedPublisher:
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"), timeout_s)
    unblocked = asyncio.Event()
    unblocked.set()
    publisher._connection = fake_connection(unblocked)  # type: ignore[assignment]
    publisher._channel = channel  # type: ignore[assignment]
    return publisher


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# CancelledError: closed with aiormq's default exc, or force-closed. None: rejected without a
# reason, which aiormq turns into a bare Exception (seen on a real broker closing mid-publish).
@pytest.mark.parametrize("reason", [asyncio.CancelledError, None])
async def test_a_confirm_rejected_by_a_closing_connection_is_unavailable_not_cancelled(
    reason: type[BaseException] | None,
) -> None:
    channel = UnconfirmedChannel()
    publisher = publisher_on(channel)
    call = asyncio.create_task(publisher.publish("x", "k", b"", message_type="T", message_id="1"))
    await settle()
    assert channel.published
    await channel.close(reason)
    with pytest.raises(Unavailable, match="did not confirm"):
        await asyncio.wait_for(call, 2.0)


async def test_a_packed_submission_whose_confirm_is_rejected_so_is_unavailable_not_a_hang() -> None:
    channel = UnconfirmedChannel()
    packer = PackingPublisher(publisher_on(channel), {"T": "Ts"})
    call = asyncio.create_task(packer.publish("x", "k", b"", message_type="T", message_id="1"))
    await settle()
    assert channel.published
    await channel.close()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(call, 2.0)


async def test_cancelling_the_callers_own_publish_stays_a_cancellation() -> None:
    channel = UnconfirmedChannel()
    publisher = publisher_on(channel)
    call = asyncio.create_task(publisher.publish("x", "k", b"", message_type="T", message_id="1"))
    await settle()
    assert channel.published
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await channel.close()


class FakeRobustConnection:
    """What connect_robust returns: records whether it was closed."""

    def __init__(self, channel_error: BaseException | None) -> None:
        self.channel_error = channel_error
        self.closed = False
        self.is_closed = False

    async def channel(self, **options: object) -> SimpleNamespace:
        if self.channel_error is not None:
            raise self.channel_error
        return SimpleNamespace(is_closed=False)

    async def close(self) -> None:
        self.closed = True


class FlakyTopology(Topology):
    """Declaring fails while `failures` lasts; an Event instead hangs it until cancelled."""

    def __init__(self, failures: list[BaseException | asyncio.Event]) -> None:
        super().__init__("t")
        self.failures = failures

    async def declare(self, channel: object) -> None:  # type: ignore[override]
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, asyncio.Event):
                await failure.wait()
            else:
                raise failure


def connecting_to(
    monkeypatch: pytest.MonkeyPatch, connections: list[FakeRobustConnection]
) -> list[FakeRobustConnection]:
    """Make connect_robust hand out these connections in turn; returns those handed out."""
    handed: list[FakeRobustConnection] = []

    async def connect_robust(url: str, **options: object) -> FakeRobustConnection:
        handed.append(connections.pop(0))
        return handed[-1]

    monkeypatch.setattr(aio_pika, "connect_robust", connect_robust)
    return handed


# The last two as aiormq fails a channel's opening when its connection is closed meanwhile.
@pytest.mark.parametrize(
    "refused",
    [
        aio_pika.exceptions.AMQPConnectionError("channel refused"),
        asyncio.CancelledError(),
        Exception(),
    ],
    ids=["amqp-error", "cancelled", "bare-exception"],
)
async def test_a_connection_whose_channel_fails_to_open_is_closed_before_the_retry(
    monkeypatch: pytest.MonkeyPatch, refused: BaseException
) -> None:
    handed = connecting_to(monkeypatch, [FakeRobustConnection(refused), FakeRobustConnection(None)])
    publisher = ConfirmedPublisher("amqp://x/", FlakyTopology([]))
    await asyncio.wait_for(publisher.connect(), 5.0)
    assert [c.closed for c in handed] == [True, False]
    assert publisher._connection is handed[1]


async def test_a_connection_whose_topology_fails_to_declare_is_closed_before_the_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed = connecting_to(monkeypatch, [FakeRobustConnection(None), FakeRobustConnection(None)])
    failed = aio_pika.exceptions.ChannelPreconditionFailed("inequivalent arg")
    publisher = ConfirmedPublisher("amqp://x/", FlakyTopology([failed]))
    await asyncio.wait_for(publisher.connect(), 5.0)
    assert [c.closed for c in handed] == [True, False]
    assert publisher._connection is handed[1]


async def test_a_connect_cancelled_while_declaring_closes_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed = connecting_to(monkeypatch, [FakeRobustConnection(None)])
    publisher = ConfirmedPublisher("amqp://x/", FlakyTopology([asyncio.Event()]))
    connecting = asyncio.create_task(publisher.connect())
    await settle()
    assert handed
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert handed[0].closed
    assert publisher._connection is None


class UnderlayFailing:
    """A robust channel whose underlying channel cannot be had: `raising` says how."""

    is_closed = False

    def __init__(self, raising: object) -> None:
        self.raising = raising

    async def get_underlay_channel(self) -> None:
        self.raising()  # type: ignore[operator]


def a_bug_of_ours() -> None:
    raise RuntimeError("dictionary changed size during iteration")


def a_closed_connection() -> None:
    # aio-pika's own check of a connection without a transport: "Connection was not opened".
    aio_pika.Connection.channel(SimpleNamespace(transport=None))  # type: ignore[arg-type]


async def test_a_closed_client_is_the_brokers_trouble_and_a_runtime_error_of_ours_is_a_bug() -> (
    None
):
    unblocked = asyncio.Event()
    unblocked.set()
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"))
    publisher._connection = fake_connection(unblocked)  # type: ignore[assignment]

    publisher._channel = UnderlayFailing(a_closed_connection)  # type: ignore[assignment]
    with pytest.raises(Unavailable):
        await publisher.publish("x", "k", b"", message_type="t", message_id="1")

    publisher._channel = UnderlayFailing(a_bug_of_ours)  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="changed size"):  # answered INTERNAL, and logged
        await publisher.publish("x", "k", b"", message_type="t", message_id="1")


def test_a_publishers_outcome_series_exist_at_zero_before_its_first_publish() -> None:
    # SanadPublishesRefused reads increase(): a series born at a restarted intake's first
    # refusal never showed it (observability helper).
    topology = Topology("zero-before")
    ConfirmedPublisher("amqp://x/", topology)
    for outcome in ("confirmed", "refused", "failed", "unavailable"):
        labels = {"exchange": topology.transactions_exchange, "outcome": outcome}
        assert REGISTRY.get_sample_value("sanad_amqp_published_total", labels) == 0.0
