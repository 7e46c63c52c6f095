"""Stopping bounds the wait on a handler: a grace, then cancelled, its micro-batch left unacked."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Outcome, TransientError
from workers import lifecycle


@dataclass(frozen=True)
class Delivery:
    body: bytes


def consumer(handler: object, grace_s: float = 0.2, backoff_s: float = 60.0) -> MicroBatchConsumer:
    options = BatchOptions(drain_grace_s=grace_s, max_backoff_s=backoff_s)
    return MicroBatchConsumer("amqp://unused", Topology("t"), "t.ingest", handler, options)  # type: ignore[arg-type]


class HangingHandler:
    """Waits on a database that never answers, unless told to answer after `answer_after_s`."""

    def __init__(self, answer_after_s: float | None = None) -> None:
        self.answer_after_s = answer_after_s
        self.started = asyncio.Event()
        self.cancelled = False

    async def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        self.started.set()
        try:
            await asyncio.sleep(3600 if self.answer_after_s is None else self.answer_after_s)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return [None] * len(batch)


async def outcomes_after_stop(
    handler: HangingHandler, grace_s: float
) -> tuple[Sequence[Outcome] | None, float]:
    """Stop once the handler runs; what handling.outcomes returns and how long after stop."""
    stop = asyncio.Event()
    batch = [Delivery(b"a"), Delivery(b"b")]
    handling = asyncio.create_task(consumer(handler, grace_s).handling.outcomes(batch, stop))  # type: ignore[arg-type]
    await asyncio.wait_for(handler.started.wait(), 1)
    stop.set()
    stopped_at = time.monotonic()
    # The bound is the behaviour: a drain that waited on the handler (an hour) instead of its
    # grace runs into this generous one, 10 s, and fails with a TimeoutError.
    outcomes = await asyncio.wait_for(handling, 10)
    return outcomes, time.monotonic() - stopped_at


async def test_a_handler_running_past_the_grace_is_cancelled_and_its_batch_left_unacked() -> None:
    handler = HangingHandler()

    outcomes, took = await outcomes_after_stop(handler, grace_s=0.2)

    assert outcomes is None  # nothing acked, nothing dead-lettered: the batch is redelivered
    assert handler.cancelled
    assert took >= 0.2  # the whole grace first: no earlier cancel


async def test_a_handler_that_finishes_within_the_grace_keeps_its_outcomes() -> None:
    handler = HangingHandler(answer_after_s=0.1)

    outcomes, _ = await outcomes_after_stop(handler, grace_s=2.0)

    assert outcomes == [None, None]
    assert not handler.cancelled


async def test_stopping_while_a_batch_is_handled_one_by_one_leaves_the_rest_unhandled() -> None:
    # Each message alone would get a grace of its own after stop: a batch of 500 could hold
    # the drain for 500 graces. The rest is left unacked instead, for redelivery.
    stop = asyncio.Event()
    alone: list[bytes] = []

    async def handler(batch: Sequence[Delivery]) -> list[Outcome]:
        if len(batch) > 1:
            raise ValueError("one of these is poison")
        alone.append(batch[0].body)
        stop.set()  # SIGTERM while the first message is handled alone
        return [None]

    batch = [Delivery(b"a"), Delivery(b"b"), Delivery(b"c")]
    outcomes = await asyncio.wait_for(
        consumer(handler, grace_s=2.0).handling.outcomes(batch, stop),  # type: ignore[arg-type]
        5,
    )

    assert outcomes is None
    assert alone == [b"a"]


async def test_stopping_during_a_backoff_ends_it_without_calling_the_handler_again() -> None:
    calls = 0
    fourth = asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> list[Outcome]:
        nonlocal calls
        calls += 1
        if calls == 4:  # after pauses of 0.1, 0.2 and 0.4 s; the next one is 0.8 s
            fourth.set()
        raise TransientError("the database went away")

    stop = asyncio.Event()
    worker = consumer(handler, backoff_s=60.0)
    handling = asyncio.create_task(worker.handling.outcomes([Delivery(b"a")], stop))  # type: ignore[list-item]
    await asyncio.wait_for(fourth.wait(), 2)
    stop.set()

    assert await asyncio.wait_for(handling, 0.5) is None
    assert calls == 4


async def test_stopping_ends_the_pause_before_reconnecting_to_the_broker() -> None:
    class Unreachable:
        attempts = 0
        third = asyncio.Event()

        async def run(self, stop: asyncio.Event) -> None:
            self.attempts += 1
            if self.attempts == 3:  # after pauses of 0.2 and 0.4 s; the next one is 0.8 s
                self.third.set()
            raise ConnectionError("broker unreachable")

    broker = Unreachable()
    stopping = asyncio.Event()
    loop = asyncio.create_task(lifecycle.consume_until_stopped(broker, stopping))
    await asyncio.wait_for(broker.third.wait(), 2)
    stopping.set()

    await asyncio.wait_for(loop, 0.4)
    assert broker.attempts == 3
