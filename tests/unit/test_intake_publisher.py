"""The confirmed publisher refuses fast: no connection, a blocked broker, or no time left."""

import asyncio
import time
from types import SimpleNamespace

import aiormq
import pytest

from sanad.amqp.publisher import ConfirmedPublisher, _is_blocked
from sanad.amqp.topology import CONTENT_TYPE, Topology
from sanad.errors import Unavailable


def fake_connection(unblocked: asyncio.Event) -> SimpleNamespace:
    amqp = SimpleNamespace(_Connection__connection_unblocked=unblocked)
    return SimpleNamespace(transport=SimpleNamespace(connection=amqp), is_closed=False)


async def test_a_publisher_without_a_connection_refuses_at_once() -> None:
    publisher = ConfirmedPublisher("amqp://guest:guest@127.0.0.1:1/", Topology("t"), 5.0)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await publisher.publish("x", "k", b"", message_type="t", message_id="1")
    assert time.monotonic() - started < 1.0  # at once: far below the 5 s confirm timeout


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


async def test_a_returned_message_is_unavailable_never_ok() -> None:
    publisher = ConfirmedPublisher("amqp://x/", Topology("t"))
    unblocked = asyncio.Event()
    unblocked.set()
    channel = ReturningChannel()
    channel.is_closed = False  # type: ignore[attr-defined]
    publisher._connection = fake_connection(unblocked)  # type: ignore[assignment]
    publisher._channel = channel  # type: ignore[assignment]
    with pytest.raises(Unavailable, match="did not confirm"):
        await publisher.publish("t.transactions", "nowhere", b"", message_type="T", message_id="2")
