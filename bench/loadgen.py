"""Closed-loop and fixed-rate load generators, the same for ceilings and for the system."""

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[object]]


@dataclass
class Result:
    """Completed calls, errors and latencies (seconds) of one run."""

    seconds: float
    completed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Completed calls per second."""
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile latency in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[index] * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the load generator while it measures, as timeit does.

    It keeps every latency and every finished call's objects until the collector runs; its full
    collections paused it for up to 56 ms at half load, which showed as the system's latency.
    Reference counting still frees what is not in a cycle; the rest is collected afterwards.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def closed_loop(call: Call, concurrency: int, seconds: float) -> Result:
    """As many calls as `concurrency` workers can complete back to back for `seconds`."""
    with collector_paused():
        return await _closed_loop(call, concurrency, seconds)


async def fixed_rate(call: Call, rate: float, seconds: float) -> Result:
    """Start calls at `rate` per second regardless of completions (open loop) for `seconds`."""
    with collector_paused():
        return await _fixed_rate(call, rate, seconds)


async def _closed_loop(call: Call, concurrency: int, seconds: float) -> Result:
    result = Result(seconds)
    begin = time.perf_counter()
    deadline = begin + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                result.errors += 1
                continue
            result.completed += 1
            result.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    # Calls started before the deadline finish after it: the rate is over the time they took.
    result.seconds = time.perf_counter() - begin
    return result


async def _fixed_rate(call: Call, rate: float, seconds: float) -> Result:
    result = Result(seconds)
    interval = 1.0 / rate
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float) -> None:
        try:
            await call()
        except Exception:
            result.errors += 1
            return
        result.completed += 1
        # From when the call was due, not when it went out: a generator that falls behind
        # must not hide the wait in its own lateness (coordinated omission).
        result.latencies.append(time.perf_counter() - scheduled)

    begin = time.perf_counter()
    count = int(rate * seconds)
    for n in range(count):
        scheduled = begin + n * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return result
