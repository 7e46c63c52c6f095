"""While a message given up on waits for its record (RetryingHandler's on_failure: the batch
worker's audit event of a handler-failed batch), the worker is held to what holds any
micro-batch in hand: a record failing transiently for the health window fails the `handling`
check, and at stop a record stuck on the database gets the drain grace, no more."""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sanad.amqp.handling import RetryingHandler
from sanad.amqp.verdicts import Dead, Outcome, TransientError
from sanad.telemetry.metrics import RETRIES
from workers.lifecycle import handling_check

WINDOW_S = 30.0
QUEUE = "t.failure-record"


@dataclass(frozen=True)
class Delivery:
    body: bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def poison(batch: Sequence[Delivery]) -> list[Outcome]:
    raise ValueError("not a submission")


def retrying(clock: Clock, hook: object, drain_grace_s: float = 1.0) -> RetryingHandler:
    return RetryingHandler(
        poison,  # type: ignore[arg-type]
        QUEUE,
        max_failures=1,
        max_backoff_s=0.0,
        drain_grace_s=drain_grace_s,
        clock=clock,
        on_failure=hook,  # type: ignore[arg-type]
    )


async def test_a_record_failing_past_the_window_fails_the_handling_check() -> None:
    # A loaded database timing out every write: the poison batch's record waits, and every
    # batch behind it with it. The check said SERVING all along.
    clock = Clock()
    verdicts: list[bool] = []
    tries = 0

    async def record(message: Delivery, dead: Dead) -> None:
        nonlocal tries
        verdicts.append(await check())
        tries += 1
        clock.now += 10.0  # each try waits out a 10 s write timeout
        if tries <= 4:
            raise TransientError("the write timed out")

    handling = retrying(clock, record)
    check = handling_check(handling, WINDOW_S)
    retried = RETRIES.labels(QUEUE)._value.get()

    outcomes = await handling.outcomes([Delivery(b"poison")], asyncio.Event())  # type: ignore[list-item]

    assert outcomes == [Dead("handler-failed", "ValueError: not a submission")]
    assert verdicts == [True, True, True, True, False]  # failing for 30 s at the fourth retry
    assert RETRIES.labels(QUEUE)._value.get() == retried + 4
    assert await check(), "the record written, nothing in hand fails"


async def test_at_stop_a_record_stuck_on_the_database_gets_the_drain_grace() -> None:
    async def stuck(message: Delivery, dead: Dead) -> None:
        await asyncio.Event().wait()  # a frozen socket: no timeout of its own ends it

    handling = retrying(Clock(), stuck, drain_grace_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(handling.outcomes([Delivery(b"poison")], stop))  # type: ignore[list-item]
    await asyncio.sleep(0.05)
    stop.set()
    started = time.monotonic()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "the record held the drain"
    assert task.result() is None  # neither acked nor dead-lettered: it returns to the queue
    assert time.monotonic() - started < 2
