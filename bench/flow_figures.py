"""Figures of what flows past intake: end to end through the ingest worker, the batch queue,
and the reports over everything stored."""

from bench import ceiling_figures, system
from bench.cpu import CpuMeter
from bench.modes import Mode
from bench.report import Figure
from bench.windows import median_of_windows, settle, shown
from sanad.devstack.launcher import LaunchedStack

REPORT_WINDOWS = 3
# The end-to-end load offered at this share of the rate stored at full speed.
PACED_SHARE = 0.9
# The report target holds at this many transactions stored.
REPORT_AT_STORED = 1_000_000


async def measure_end_to_end(
    mode: Mode,
    stack: LaunchedStack,
    make: system.Submissions,
    ceilings_by_name: dict[str, float],
    meter: CpuMeter,
) -> list[Figure]:
    """Submitted to recorded at full speed, then offered at PACED_SHARE of what that stored."""
    intake = stack.target("intake")
    queue_and_insert = (ceiling_figures.PUBLISH, ceiling_figures.CONSUME, ceiling_figures.INSERT)
    lowest = min(ceilings_by_name[name] for name in queue_and_insert)
    # Offered through streaming intake, intake's fastest path, so the figure measures the
    # queue and the workers rather than restating the unary rate.
    with meter.window() as full_cpu:
        full, flat = await system.end_to_end(
            stack, lambda: system.streaming(intake, make, 2 * mode.stream_items, mode.streams)
        )
    await settle(stack, "end to end")
    # Full speed offers what intake takes, which may be more than the worker stores. Offered
    # at 90% of what was stored, the backlog shows whether that rate is sustained.
    paced = PACED_SHARE * full.rate
    per_stream = max(1, round(paced * mode.seconds / mode.streams))
    with meter.window() as paced_cpu:
        sustained, paced_flat = await system.end_to_end(
            stack, lambda: system.streaming(intake, make, per_stream, mode.streams, rate=paced)
        )
    return [
        Figure(f"end to end submitted -> recorded (streaming at full speed; backlog flat: {flat})",
               full.rate, "/s", lowest, "lowest of raw queue / raw insert", ">= 50%, backlog flat",
               full.rate >= 0.5 * lowest and flat, conditions={"backlog_flat": flat},
               ).spent(full_cpu, full.completed),
        Figure(f"end to end offered at {PACED_SHARE:.0%} of that (backlog flat: {paced_flat})",
               sustained.rate, "/s", lowest, "lowest of raw queue / raw insert",
               ">= 50%, backlog flat", sustained.rate >= 0.5 * lowest and paced_flat,
               conditions={"backlog_flat": paced_flat, "offered_per_s": paced},
               ).spent(paced_cpu, sustained.completed),
    ]  # fmt: skip


async def measure_batch_and_reports(
    mode: Mode,
    stack: LaunchedStack,
    make: system.Submissions,
    ceilings_by_name: dict[str, float],
    meter: CpuMeter,
) -> list[Figure]:
    """The batch path against raw insert_many, then report latencies over what is stored."""
    insert = ceilings_by_name[ceiling_figures.INSERT]
    with meter.window() as batch_cpu:
        batch = await system.batch_load(stack, make, mode.batch_items)
    figures = [
        Figure(f"batch: {mode.batch_items:,} items via the batch queue", batch.rate, "items/s",
               insert, "raw insert_many", ">= 70%", batch.rate >= 0.7 * insert,
               conditions={"items": mode.batch_items}).spent(batch_cpu, batch.completed),
    ]  # fmt: skip
    seeded = await system.seed_governorate(stack, mode.seed_scale)
    stored = await system.recorded_count(stack.mongo_url, "sanad")
    # DA 2024: the seeded year, its transactions spread over days, centres and services.
    # In REPORT_WINDOWS windows, reported as their medians with each window's p99 shown, as the
    # half-load latency is: one window's p99 of 100 calls is its one or two slowest calls.
    windows = [
        await system.report_latencies(stack.target("metrics"), 2024, mode.report_calls)
        for _ in range(REPORT_WINDOWS)
    ]
    over = f"{stored:,} stored, DA {seeded.load.accepted:,} seeded"
    conditions = {"stored": stored, "seeded": seeded.load.accepted, "calls": mode.report_calls}
    for index, name in enumerate(("GetGovernorateReport", "GetAwardLeaderboard")):
        p50, p99, each = median_of_windows([window[index] for window in windows])
        figures.append(
            Figure(f"{name} p50 ({over}; median of windows)", p50, "ms", conditions=conditions)
        )
        figures.append(Figure(f"{name} p99 ({over}; median of windows: {shown(each)} ms)", p99,
                              "ms", target=f"<= 50 ms at {REPORT_AT_STORED:,} stored",
                              met=p99 <= 50 and stored >= REPORT_AT_STORED,
                              conditions={**conditions, "window_p99s_ms": each}))  # fmt: skip
    return figures
