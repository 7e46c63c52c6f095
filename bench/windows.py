"""Loads shared by the ceilings and the system's figures: the fastest closed loop, medians of
latency windows, and waiting for the worker between loads."""

import statistics
import sys
from collections.abc import Awaitable, Callable

from bench import system
from bench.cpu import CpuMeter, Window
from bench.loadgen import Result
from bench.modes import Mode
from sanad.devstack.launcher import LaunchedStack


async def fastest_unary(
    target: str,
    make: system.Submissions,
    mode: Mode,
    meter: CpuMeter,
    between: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Result, Window, int]:
    """The maximum sustained unary rate: the best closed loop of those at each concurrency,
    its CPU, and its number of callers.

    One number of callers finds the maximum of a server that is bound by its CPU at that
    number, like the no-op; a server that shares round trips among concurrent calls (claims,
    publishes) is bound by its latency there and reaches its maximum only with more callers.
    """
    best: tuple[Result, Window, int] | None = None
    for callers in mode.concurrencies:
        with meter.window() as cpu:
            result = await system.unary(target, make, callers, mode.seconds)
        if between is not None:
            await between()
        if best is None or result.rate > best[0].rate:
            best = (result, cpu, callers)
    assert best is not None, "a mode names at least one concurrency"
    return best


def median_of_windows(windows: list[Result]) -> tuple[float, float, list[float]]:
    """The median p50 and p99 (ms) of several windows of one latency, and each window's p99."""
    p99s = [window.percentile_ms(99) for window in windows]
    p50 = statistics.median(window.percentile_ms(50) for window in windows)
    return p50, statistics.median(p99s), p99s


def shown(p99s: list[float]) -> str:
    """Each window's p99, as a figure's name lists them."""
    return ", ".join(f"{p99:.1f}" for p99 in p99s)


async def settle(stack: LaunchedStack, after: str) -> None:
    """Let the worker store the last figure's backlog before the next figure starts."""
    waited = await system.settle(stack)
    print(f"bench: the worker stored the backlog of {after} in {waited:.1f} s", file=sys.stderr)
