"""A handler that raises (not TransientError) costs only the message it cannot take."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from aiormq.exceptions import ChannelInvalidStateError

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Dead, Outcome, TransientError


@dataclass(frozen=True)
class Delivery:
    body: bytes


class Handler:
    """Raises ValueError for any micro-batch holding a poison body; records every call."""

    def __init__(self, transient_first: int = 0) -> None:
        self.calls: list[list[bytes]] = []
        self.transient_left = transient_first

    async def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        self.calls.append([d.body for d in batch])
        if self.transient_left:
            self.transient_left -= 1
            raise TransientError("the database went away")
        if any(d.body == b"poison" for d in batch):
            raise ValueError("cannot take this one")
        return [None] * len(batch)


def consumer(handler: object, max_failures: int = 3) -> MicroBatchConsumer:
    options = BatchOptions(max_failures=max_failures, max_backoff_s=0.01)
    return MicroBatchConsumer("amqp://unused", Topology("t"), "t.ingest", handler, options)  # type: ignore[arg-type]


async def test_the_message_that_keeps_failing_alone_is_dead_and_the_others_are_handled() -> None:
    handler = Handler()
    batch = [Delivery(b"a"), Delivery(b"poison"), Delivery(b"b")]

    outcomes = await consumer(handler).handling.outcomes(batch, asyncio.Event())  # type: ignore[arg-type]

    assert outcomes == [None, Dead("handler-failed", "ValueError: cannot take this one"), None]
    assert handler.calls == [
        [b"a", b"poison", b"b"],
        [b"a"],
        *[[b"poison"]] * 3,
        [b"b"],
    ]


async def test_transient_failures_still_retry_the_whole_micro_batch() -> None:
    handler = Handler(transient_first=2)
    batch = [Delivery(b"a"), Delivery(b"b")]

    outcomes = await consumer(handler).handling.outcomes(batch, asyncio.Event())  # type: ignore[arg-type]

    assert outcomes == [None, None]
    assert handler.calls == [[b"a", b"b"]] * 3


@pytest.mark.parametrize("error", [ChannelInvalidStateError("closed"), ConnectionResetError()])
async def test_a_broken_broker_connection_is_not_blamed_on_a_message(error: Exception) -> None:
    async def handler(batch: Sequence[Delivery]) -> list[Outcome]:
        raise error

    with pytest.raises(type(error)):
        await consumer(handler).handling.outcomes([Delivery(b"a")], asyncio.Event())  # type: ignore[arg-type]


class Recorder:
    """An on_failure hook that fails transiently `transient_first` times, then records."""

    def __init__(self, transient_first: int = 0, error: Exception | None = None) -> None:
        self.recorded: list[tuple[bytes, Dead]] = []
        self.transient_left = transient_first
        self.error = error

    async def __call__(self, message: Delivery, dead: Dead) -> None:
        if self.transient_left:
            self.transient_left -= 1
            raise TransientError("the database went away")
        if self.error is not None:
            raise self.error
        self.recorded.append((message.body, dead))


def recording_consumer(handler: object, hook: Recorder) -> MicroBatchConsumer:
    options = BatchOptions(max_failures=2, max_backoff_s=0.01)
    return MicroBatchConsumer(
        "amqp://unused",
        Topology("t"),
        "t.batch",
        handler,
        options,
        on_failure=hook,  # type: ignore[arg-type]
    )


async def test_a_message_given_up_on_is_recorded_once_before_it_is_dead_lettered() -> None:
    hook = Recorder(transient_first=2)
    batch = [Delivery(b"a"), Delivery(b"poison")]

    outcomes = await recording_consumer(Handler(), hook).handling.outcomes(batch, asyncio.Event())  # type: ignore[arg-type]

    dead = Dead("handler-failed", "ValueError: cannot take this one")
    assert outcomes == [None, dead]
    assert hook.recorded == [(b"poison", dead)]  # its transient failures retried, then once


async def test_a_failure_recorded_while_stopping_leaves_the_message_unacked() -> None:
    hook = Recorder(transient_first=1_000)
    stop = asyncio.Event()
    consumer = recording_consumer(Handler(), hook)
    asyncio.get_running_loop().call_later(0.2, stop.set)

    outcomes = await consumer.handling.outcomes([Delivery(b"poison")], stop)  # type: ignore[list-item]

    assert outcomes is None  # neither acked nor dead-lettered without its record: it returns
    assert hook.recorded == []


async def test_a_record_that_fails_for_good_does_not_hold_the_queue() -> None:
    hook = Recorder(error=KeyError("a bug in the hook"))

    outcomes = await recording_consumer(Handler(), hook).handling.outcomes(
        [Delivery(b"poison")],  # type: ignore[list-item]
        asyncio.Event(),
    )

    assert outcomes == [Dead("handler-failed", "ValueError: cannot take this one")]
