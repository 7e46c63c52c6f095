"""How the bench measures: open-loop latency from when each call was due, a closed loop's rate
over the time its calls took, whether a backlog grows, and each process's peak memory."""

import asyncio
import os
import time

from bench.loadgen import closed_loop, fixed_rate
from bench.memory import BrokerMemory, peak_rss_mb, resident_mb
from bench.system import backlog_growth


async def test_open_loop_latency_counts_from_when_a_call_was_due() -> None:
    # The first call stalls the event loop 50 ms: the calls due meanwhile go out late, and that
    # wait is the caller's as much as any server's (coordinated omission).
    stalled = False

    async def call() -> None:
        nonlocal stalled
        if not stalled:
            stalled = True
            time.sleep(0.05)  # noqa: ASYNC251 - the stall under test

    result = await fixed_rate(call, rate=1000, seconds=0.2)

    assert result.completed == 200
    assert result.percentile_ms(99) >= 30


async def test_a_closed_loops_rate_is_over_the_time_its_calls_took() -> None:
    async def call() -> None:
        await asyncio.sleep(0.3)  # each call runs past the 0.1 s window

    result = await closed_loop(call, concurrency=4, seconds=0.1)

    assert result.completed == 4
    assert result.seconds >= 0.3
    assert result.rate <= 4 / 0.3


def test_a_backlog_that_grows_over_the_second_half_is_growing() -> None:
    # 10 items a second more each second, from t=0 to t=10, sampled every half second.
    samples = [(t / 2, 10.0 * t / 2) for t in range(21)]
    assert backlog_growth(samples, 0.0, 10.0) == 10.0


def test_a_backlog_that_rose_then_held_is_flat_over_the_second_half() -> None:
    # The pipeline fills in the first seconds, then holds at 500 items.
    samples = [(t / 2, min(500.0, 250.0 * t / 2)) for t in range(21)]
    assert backlog_growth(samples, 0.0, 10.0) == 0.0
    assert backlog_growth([(9.0, 5.0)], 0.0, 10.0) == 0.0  # too few samples to tell


async def test_the_brokers_memory_is_its_highest_sample_over_the_run() -> None:
    # Sampled, not its own peak: the broker ran before the run, for other work too.
    samples = iter([[os.getpid()], [], [os.getpid()]])
    broker = BrokerMemory(lambda: next(samples, []), every_s=0.01)
    sampling = asyncio.create_task(broker.sample())
    await asyncio.sleep(0.1)
    sampling.cancel()

    own = resident_mb([os.getpid()])
    assert own is not None
    assert broker.peak_mb is not None
    assert 0 < broker.peak_mb <= own * 1.5
    assert list(broker.row().values()) == [broker.peak_mb]


async def test_the_brokers_memory_is_kept_from_the_start_of_each_stage_to_its_peak() -> None:
    broker = BrokerMemory(lambda: [os.getpid()], every_s=0.01)
    sampling = asyncio.create_task(broker.sample())
    broker.stage = "ceilings"
    await asyncio.sleep(0.05)
    ballast = bytes(range(256)) * 256 * 1024  # 64 MiB written, so resident: a higher peak
    broker.stage = "batch and reports"
    await asyncio.sleep(0.05)
    sampling.cancel()
    del ballast

    assert list(broker.by_stage) == ["ceilings", "batch and reports"]
    ceilings_start, ceilings_peak = broker.by_stage["ceilings"]
    batch_start, batch_peak = broker.by_stage["batch and reports"]
    assert ceilings_start <= ceilings_peak < batch_start
    assert batch_peak >= ceilings_peak + 60
    assert broker.peak_mb == batch_peak


def test_no_broker_on_this_machine_is_no_row() -> None:
    assert BrokerMemory(list).row() == {}
    assert resident_mb([]) is None


def test_a_processs_peak_is_named_by_its_module() -> None:
    peaks = peak_rss_mb({os.getpid(): "python -m bench --mode quick", 2**22 + 1: "gone"})

    assert list(peaks) == ["bench"]
    assert peaks["bench"] > 0
