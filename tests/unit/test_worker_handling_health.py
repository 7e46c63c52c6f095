"""A worker's `handling` health check: NOT_SERVING once every try of the micro-batch in hand has
failed transiently for its window, SERVING again once a try succeeds or nothing is in hand."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sanad.amqp.handling import HANDLER_FAILED, RetryingHandler
from sanad.amqp.verdicts import Dead, Outcome, TransientError
from workers.lifecycle import handling_check

WINDOW_S = 30.0


@dataclass(frozen=True)
class Delivery:
    body: bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore:
    """Fails transiently while `down`, advancing the clock by each try's cost; then succeeds.
    Each call reports the handling check's verdict as the handler sees it."""

    def __init__(self, clock: Clock, try_s: float) -> None:
        self.clock = clock
        self.try_s = try_s
        self.down = True
        self.calls = 0
        self.tried = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        self.calls += 1
        self.clock.now += self.try_s
        if self.down:
            self.tried.set()
            await self.release.wait()
            self.release.clear()
            raise TransientError("the write timed out")
        return [None] * len(batch)


def retrying(store: FlakyStore, clock: Clock, failures: int = 3) -> RetryingHandler:
    return RetryingHandler(
        store,  # type: ignore[arg-type]
        "t.ingest",
        max_failures=failures,
        max_backoff_s=0.0,
        drain_grace_s=1.0,
        clock=clock,
    )


async def next_try(store: FlakyStore) -> None:
    """Let the try in hand fail and wait until the next one has started."""
    store.tried.clear()
    store.release.set()
    await asyncio.wait_for(store.tried.wait(), 5)


async def test_a_micro_batch_failing_past_the_window_fails_the_check_until_a_try_succeeds() -> None:
    clock = Clock()
    store = FlakyStore(clock, try_s=10.0)  # each try waits out a 10 s write timeout
    handling = retrying(store, clock)
    check = handling_check(handling, WINDOW_S)
    stop = asyncio.Event()
    assert await check()

    task = asyncio.create_task(handling.outcomes([Delivery(b"a")], stop))  # type: ignore[list-item]
    await asyncio.wait_for(store.tried.wait(), 5)
    assert await check(), "a try in progress has not failed yet"
    await next_try(store)  # the first failed at 1010; the second started
    assert handling.failing_for_s() == 10.0
    assert await check()
    await next_try(store)
    await next_try(store)  # 30 s after the first failure, every try since failed
    assert handling.failing_for_s() == WINDOW_S
    assert not await check()

    store.down = False
    store.release.set()
    assert await asyncio.wait_for(task, 5) == [None]
    assert handling.failing_for_s() == 0.0
    assert await check(), "a try that succeeds ends the failing streak"


async def test_the_streak_ends_with_the_micro_batch_whatever_ends_it() -> None:
    """Stopped, or the batch left to the broker: nothing in hand fails any more, so an idle
    worker whose queue another worker drained meanwhile does not stay NOT_SERVING."""
    clock = Clock()
    store = FlakyStore(clock, try_s=20.0)
    handling = retrying(store, clock)
    check = handling_check(handling, WINDOW_S)
    stop = asyncio.Event()
    task = asyncio.create_task(handling.outcomes([Delivery(b"a")], stop))  # type: ignore[list-item]
    await asyncio.wait_for(store.tried.wait(), 5)
    await next_try(store)
    await next_try(store)
    assert not await check()

    stop.set()
    store.release.set()
    assert await asyncio.wait_for(task, 5) is None
    assert handling.failing_for_s() == 0.0
    assert await check()


async def test_a_message_the_handler_cannot_take_is_not_a_failing_dependency() -> None:
    """Only transient failures count: a poison message is retried alone and dead-lettered, and
    the check stays SERVING however long that takes."""
    clock = Clock()

    async def poison(batch: Sequence[Delivery]) -> list[Outcome]:
        clock.now += 60.0
        raise ValueError("not a submission")

    handling = RetryingHandler(
        poison,  # type: ignore[arg-type]
        "t.ingest",
        max_failures=2,
        max_backoff_s=0.0,
        drain_grace_s=1.0,
        clock=clock,
    )
    check = handling_check(handling, WINDOW_S)
    verdicts = []

    async def watching(batch: Sequence[Delivery]) -> list[Outcome]:
        verdicts.append(await check())
        return await poison(batch)

    handling.handler = watching  # type: ignore[assignment]
    outcomes = await handling.outcomes([Delivery(b"x")], asyncio.Event())  # type: ignore[list-item]
    assert outcomes == [Dead(HANDLER_FAILED, "ValueError: not a submission")]
    assert verdicts == [True, True]
    assert await check()
