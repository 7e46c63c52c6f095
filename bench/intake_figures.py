"""Intake's figures: the maximum unary rate, latency at half of it, and streaming."""

import sys

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
    halves, half_cpu, floors, floor_cpu = await half_load(stack, make, half_rate, mode, meter)
    p50, p99, each = median_of_windows(halves)
    floor_p50, floor_p99, floor_each = median_of_windows(floors)
    confirms, confirm_cpu = await confirm_floor(stack, half_rate, mode, meter)
    confirm_p50, confirm_p99, confirm_each = median_of_windows(confirms)
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
               ).spent(half_cpu, sum(half.completed for half in halves)),
        # Not a target's ceiling: the bare gRPC stack's latency at the same offered rate, the
        # floor under intake's figure on this machine in this run.
        Figure(f"{ceiling_figures.UNARY} p50 at intake's half-load rate (median of windows)",
               floor_p50, "ms", conditions=at_half),
        Figure(f"{ceiling_figures.UNARY} p99 at intake's half-load rate (median of windows: "
               f"{shown(floor_each)} ms)", floor_p99, "ms",
               conditions={**at_half, "window_p99s_ms": floor_each},
               ).spent(floor_cpu, sum(floor.completed for floor in floors)),
        # Nor this: the broker's own confirm at the same rate, one message a publish. Every
        # submission waits for one confirm after its claim, so its latency is the floor too.
        Figure(f"{ceiling_figures.PUBLISH} p50 at intake's half-load rate (median of windows)",
               confirm_p50, "ms", conditions=at_half),
        Figure(f"{ceiling_figures.PUBLISH} p99 at intake's half-load rate (median of windows: "
               f"{shown(confirm_each)} ms)", confirm_p99, "ms",
               conditions={**at_half, "window_p99s_ms": confirm_each},
               ).spent(confirm_cpu, sum(confirm.completed for confirm in confirms)),
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


async def half_load(
    stack: LaunchedStack, make: system.Submissions, rate: float, mode: Mode, meter: CpuMeter
) -> tuple[list[Result], Window, list[Result], Window]:
    """Intake's latency at `rate` in HALF_LOAD_WINDOWS windows, each followed by a window of
    the no-op server at the same rate; the windows of each and their CPU.

    Medians of windows are reported: one window's p99 on this shared machine says mostly
    whether a stall elsewhere fell into it. Alternating the two puts the machine's drift into
    both. Their CPU per call shows how far below full the cores are at this rate.
    """
    intake = stack.target("intake")
    halves: list[Result] = []
    floors: list[Result] = []
    half_cpu, floor_cpu = Window(), Window()
    noop = ceilings.NoopProcess(stack.env)
    try:
        await noop.wait_serving()
        for _ in range(HALF_LOAD_WINDOWS):
            with meter.window() as cpu:
                halves.append(await system.unary_at_rate(intake, make, rate, mode.seconds))
            half_cpu += cpu
            await settle(stack, "half load")
            with meter.window() as cpu:
                floors.append(await system.unary_at_rate(noop.target, make, rate, mode.seconds))
            floor_cpu += cpu
    finally:
        noop.stop()
    return halves, half_cpu, floors, floor_cpu


async def confirm_floor(
    stack: LaunchedStack, rate: float, mode: Mode, meter: CpuMeter
) -> tuple[list[Result], Window]:
    """The broker's confirm latency at `rate` in HALF_LOAD_WINDOWS windows, and their CPU."""
    windows: list[Result] = []
    cpu_of_all = Window()
    for n in range(HALF_LOAD_WINDOWS):
        with meter.window() as cpu:
            windows.append(
                await ceilings.amqp_confirm_at_rate(
                    stack.env["SANAD_AMQP_URL"],
                    f"{stack.env['SANAD_AMQP_PREFIX']}.bench-confirm-{n}",
                    rate,
                    mode.seconds,
                )
            )
        cpu_of_all += cpu
    return windows, cpu_of_all
