"""The confirmed publisher refuses fast: no connection, a blocked broker, or no time left."""

import asyncio
import time
from types import SimpleNamespace

import pytest

from sanad.amqp.publisher import ConfirmedPublisher, _is_blocked
from sanad.amqp.topology import Topology
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
