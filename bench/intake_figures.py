"""Intake's figures: the maximum unary rate, latency at half of it, and streaming."""

import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field

import grpc

from bench import ceiling_figures, ceilings, system
from bench.cpu import CpuMeter, Window
from bench.loadgen import Result
from bench.modes import Mode
from bench.report import Figure
from bench.windows import fastest_unary, median_of_windows, settle, shown
from sanad.devstack.launcher import LaunchedStack

HALF_LOAD_WINDOWS = 3


async def measure_intake(
    mode: Mode,
    stack: LaunchedStack,
    make: system.Submissions,
    ceilings_by_name: dict[str, float],
    meter: CpuMeter,
) -> list[Figure]:
    """Unary at its maximum and at half of it (beside the no-op at that rate), then streaming."""
    intake = stack.target("intake")
    noop_unary = ceilings_by_name[ceiling_figures.UNARY]
    unary, unary_cpu, callers = await fastest_unary(
        intake, make, mode, meter, between=lambda: settle(stack, "a unary load")
    )
    half_rate = max(unary.rate / 2, 1)
    halves, floors, confirms = await half_load(stack, make, half_rate, mode, meter)
    p50, p99, each = median_of_windows(halves.results)
    at_half = {"offered_per_s": half_rate, "seconds_per_window": mode.seconds}
    figures = [
        Figure(f"intake unary SubmitTransaction ({callers} callers)", unary.rate, "/s",
               noop_unary, "no-op gRPC unary", ">= 50%", unary.rate >= 0.5 * noop_unary,
               conditions={"callers": callers}).spent(unary_cpu, unary.completed),
        Figure("intake unary p50 at half load (median of windows)", p50, "ms",
               conditions=at_half),
        Figure(f"intake unary p99 at half load (median of windows: {shown(each)} ms)", p99, "ms",
               target="<= 25 ms", met=p99 <= 25,
               conditions={**at_half, "window_p99s_ms": each},
               ).spent(halves.cpu, halves.completed),
        # Not targets' ceilings: the bare gRPC stack's latency at the same offered rate, and
        # the broker's own confirm (one message a publish; every submission waits for one after
        # its claim): the floors under intake's figure on this machine in this run.
        *floor_figures(ceiling_figures.UNARY, floors, at_half),
        *floor_figures(ceiling_figures.PUBLISH, confirms, at_half),
    ]  # fmt: skip
    try:
        with meter.window() as stream_cpu:
            stream = await system.streaming(intake, make, mode.stream_items, mode.streams)
        noop_stream = ceilings_by_name[ceiling_figures.STREAM]
        figures.append(
            Figure("intake streaming SubmitTransactions", stream.rate, "items/s", noop_stream,
                   "no-op gRPC streaming", ">= 60%", stream.rate >= 0.6 * noop_stream,
                   conditions={"streams": mode.streams, "items": mode.streams * mode.stream_items},
                   ).spent(stream_cpu, stream.completed)
        )  # fmt: skip
    except grpc.aio.AioRpcError as error:
        print(f"bench: streaming intake not measured: {error.code().name}", file=sys.stderr)
    await settle(stack, "streaming")
    return figures


def floor_figures(name: str, floor: "Windows", at_half: dict[str, float]) -> list[Figure]:
    """A floor's p50 and p99 at intake's half-load rate, medians of its windows."""
    p50, p99, each = median_of_windows(floor.results)
    return [
        Figure(f"{name} p50 at intake's half-load rate (median of windows)", p50, "ms",
               conditions=at_half),
        Figure(f"{name} p99 at intake's half-load rate (median of windows: {shown(each)} ms)",
               p99, "ms", conditions={**at_half, "window_p99s_ms": each},
               ).spent(floor.cpu, floor.completed),
    ]  # fmt: skip


@dataclass
class Windows:
    """The latency windows of one load at the half-load rate, and the CPU they spent."""

    results: list[Result] = field(default_factory=list)
    cpu: Window = field(default_factory=Window)

    @property
    def completed(self) -> int:
        return sum(result.completed for result in self.results)

    async def measure(self, meter: CpuMeter, load: Awaitable[Result]) -> None:
        with meter.window() as cpu:
            self.results.append(await load)
        self.cpu += cpu


async def half_load(
    stack: LaunchedStack, make: system.Submissions, rate: float, mode: Mode, meter: CpuMeter
) -> tuple[Windows, Windows, Windows]:
    """Intake's latency at `rate` in HALF_LOAD_WINDOWS windows, each followed by a window of
    the no-op server and one of the broker's raw publish-with-confirm at the same rate.

    Medians of windows are reported: one window's p99 on this shared machine says mostly
    whether a stall elsewhere fell into it. Alternating the three puts the machine's drift into
    each. Their CPU per call shows how far below full the cores are at this rate.
    """
    intake = stack.target("intake")
    halves, floors, confirms = Windows(), Windows(), Windows()
    noop = ceilings.NoopProcess(stack.env)
    try:
        await noop.wait_serving()
        for n in range(HALF_LOAD_WINDOWS):
            await halves.measure(meter, system.unary_at_rate(intake, make, rate, mode.seconds))
            await settle(stack, "half load")
            await floors.measure(meter, system.unary_at_rate(noop.target, make, rate, mode.seconds))
            queue = f"{stack.env['SANAD_AMQP_PREFIX']}.bench-confirm-{n}"
            await confirms.measure(
                meter,
                ceilings.amqp_confirm_at_rate(
                    stack.env["SANAD_AMQP_URL"], queue, rate, mode.seconds
                ),
            )
    finally:
        noop.stop()
    return halves, floors, confirms
