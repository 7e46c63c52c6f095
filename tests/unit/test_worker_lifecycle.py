"""The workers' shared consume loop: broker trouble is retried with backoff until stopped."""

import asyncio

import pytest

from sanad.amqp.consumer import ConsumerCancelled
from workers import lifecycle


class FlakyConsumer:
    """Fails to connect `failures` times, then consumes until stopped."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("broker unreachable")
        await stop.wait()


async def test_a_consumer_that_cannot_reach_the_broker_is_retried_until_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(lifecycle.asyncio, "sleep", recorded_sleep)
    consumer = FlakyConsumer(failures=8)
    stopping = asyncio.Event()
    loop = asyncio.create_task(lifecycle.consume_until_stopped(consumer, stopping))
    for _ in range(1000):
        if consumer.attempts > consumer.failures:
            break
        await real_sleep(0)
    stopping.set()
    await asyncio.wait_for(loop, 1)

    assert consumer.attempts == 9
    assert pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


async def test_a_cancelled_consumer_ends_the_loop_instead_of_idling() -> None:
    class Cancelled:
        async def run(self, stop: asyncio.Event) -> None:
            raise ConsumerCancelled("queue deleted")

    with pytest.raises(ConsumerCancelled):
        await asyncio.wait_for(lifecycle.consume_until_stopped(Cancelled(), asyncio.Event()), 1)
