"""The system's own figures, measured against the stack as `make run` starts it."""

import asyncio
import contextlib
import statistics
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable

import grpc
from pymongo import AsyncMongoClient

from bench.ceilings import RequestFactory, grpc_stream
from bench.loadgen import Result, closed_loop, fixed_rate
from sanad.cli.batch_send import send as send_batches
from sanad.devstack.launcher import LaunchedStack
from sanad.seed.plan import SeedPlan
from sanad.seed.run import SeedSummary, Targets, seed
from sanad.v1 import (
    common_pb2,
    events_pb2,
    intake_pb2,
    intake_pb2_grpc,
    metrics_pb2,
    metrics_pb2_grpc,
)


class Submissions(RequestFactory):
    """Valid submissions for one centre and service, each with its own request id."""

    def __init__(self, center_id: str, service_code: str) -> None:
        self.center_id = center_id
        self.service_code = service_code
        self.run = uuid.uuid4().hex[:8]
        self.counter = 0

    def __call__(self, stream: int = 0, n: int = -1) -> intake_pb2.SubmitTransactionRequest:
        self.counter += 1
        return intake_pb2.SubmitTransactionRequest(
            request_id=f"{self.run}-{stream}-{n}-{self.counter}",
            center_id=self.center_id,
            service_code=self.service_code,
            channel=common_pb2.CHANNEL_API,
            fee_baisa=5000,
            beneficiary_civil_number=f"{10_000_000 + self.counter % 89_999_999}",
        )


def open_centre(stack: LaunchedStack) -> tuple[str, str]:
    """A catalogue service and an active centre offering it, through sanadctl."""
    code = f"BENCH-{uuid.uuid4().hex[:8].upper()}"
    stack.ctl(
        "catalogue",
        "add",
        "--code",
        code,
        "--agency",
        "ROP",
        "--name-ar",
        "خدمة",
        "--name-en",
        "Bench service",
        "--fee-baisa",
        "5000",
        "--sla-hours",
        "48",
    )
    out = stack.ctl(
        "centers",
        "register",
        "--licence-number",
        f"B-{uuid.uuid4().hex[:8]}",
        "--name-ar",
        "مركز",
        "--name-en",
        "Bench centre",
        "--owner",
        "Bench",
        "--governorate",
        "DA",
        "--wilayat",
        "DA-NIZ",
        "--omani-staff",
        "3",
        "--total-staff",
        "4",
        "--service",
        code,
    ).stdout
    center = next(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("id:")
    )
    stack.ctl("licence", "approve", center, "--reason", "bench: documents complete")
    stack.ctl("licence", "activate", center, "--reason", "bench: inspection passed")
    return center, code


async def wait_until_visible(target: str, make: Submissions, within_s: float = 15) -> None:
    """Until intake's snapshot knows the new centre (a submission is accepted)."""
    deadline = time.monotonic() + within_s
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        while True:
            try:
                await stub.SubmitTransaction(make(), timeout=5)
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
            else:
                return


async def unary(target: str, make: Submissions, concurrency: int, seconds: float) -> Result:
    """Closed-loop SubmitTransaction with a fresh request id per call."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        return await closed_loop(
            lambda: stub.SubmitTransaction(make(), timeout=10), concurrency, seconds
        )


async def unary_at_rate(target: str, make: Submissions, rate: float, seconds: float) -> Result:
    """Open-loop SubmitTransaction at a fixed rate, for latency at partial load."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        return await fixed_rate(lambda: stub.SubmitTransaction(make(), timeout=10), rate, seconds)


async def streaming(
    target: str, make: Submissions, items: int, streams: int, rate: float | None = None
) -> Result:
    return await grpc_stream(target, make, items, streams, rate)


async def recorded_count(mongo_url: str, database: str) -> int:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        return await client[database].transactions.estimated_document_count()
    finally:
        await client.close()


RECORDED_SERIES = "sanad_transaction_recorded_lag_seconds_count"
SUBMITTED_SERIES = "sanad_transactions_submitted_total"


async def scraped_sum(port: int, series: str) -> float:
    """The sum of one series over all its labels, from a process's own /metrics.

    Polling this costs the database nothing; a count on the development server scans the
    collection, and polling one every 50 ms took half its time away from the writes measured.
    """

    def fetch() -> float:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            lines = response.read().decode().splitlines()
        return sum(
            float(line.rsplit(" ", 1)[-1])
            for line in lines
            if line.startswith(series) and line[len(series)] in " {"
        )

    return await asyncio.to_thread(fetch)


async def recorded_by_worker(metrics_port: int) -> float:
    """How many submissions the ingest worker has stored."""
    return await scraped_sum(metrics_port, RECORDED_SERIES)


async def backlog(stack: LaunchedStack) -> float:
    """Submissions intake accepted that the ingest worker has not stored yet."""
    accepted = await scraped_sum(stack.metrics_ports["intake"], SUBMITTED_SERIES)
    return accepted - await recorded_by_worker(stack.metrics_ports["ingest"])


async def settle(stack: LaunchedStack, within_s: float = 120) -> float:
    """Wait until the ingest worker has stored every submission intake accepted; the seconds.

    Between figures, so that each measures the system at its own load, not while the worker
    still stores the previous figure's backlog (which would also count towards end to end).
    """
    started = time.perf_counter()
    while time.perf_counter() - started < within_s:
        if await backlog(stack) <= 0:
            break
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


# How often the backlog (accepted, not yet stored) is read during an end-to-end load.
BACKLOG_EVERY_S = 0.5
# Flat: over the load's second half the backlog grows by less than this share of the rate offered,
# that is, the worker stores at least 98% of it.
FLAT_GROWTH_SHARE = 0.02


async def end_to_end(
    stack: LaunchedStack, submit: Callable[[], Awaitable[Result]]
) -> tuple[Result, bool]:
    """Run the submission load `submit`; the figure is how fast its items became RECORDED.

    The backlog is flat when it does not grow over the second half of the load (backlog_growth,
    sampled from intake's and the worker's metrics) and every submission is stored within 2 s of
    the last one. What is stored is counted in the database once at the end.
    """
    database = "sanad"
    port = stack.metrics_ports["ingest"]
    before = await recorded_count(stack.mongo_url, database)
    seen_before = await recorded_by_worker(port)
    samples: list[tuple[float, float]] = []
    sampling = asyncio.create_task(_sample_backlog(stack, samples))
    started = time.perf_counter()
    try:
        submitted = await submit()
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    finish_submit = time.perf_counter()
    while await recorded_by_worker(port) < seen_before + submitted.completed:
        if time.perf_counter() - finish_submit > 60:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    drained = time.perf_counter() - finish_submit
    stored = await recorded_count(stack.mongo_url, database) - before
    offered = submitted.completed / (finish_submit - started)
    growing = backlog_growth(samples, started, finish_submit) > FLAT_GROWTH_SHARE * offered
    flat = drained < 2.0 and stored >= submitted.completed and not growing
    return Result(elapsed, completed=stored), flat


async def _sample_backlog(stack: LaunchedStack, samples: list[tuple[float, float]]) -> None:
    """(time, submissions accepted and not yet stored) every BACKLOG_EVERY_S, until cancelled."""
    while True:
        samples.append((time.perf_counter(), await backlog(stack)))
        await asyncio.sleep(BACKLOG_EVERY_S)


def backlog_growth(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """How fast the backlog grew (items/s, least squares) over the second half of [start, end];
    0 with fewer than two samples there."""
    half = [(t, b) for t, b in samples if start + (end - start) / 2 <= t <= end]
    if len(half) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in half)
    mean_b = statistics.fmean(b for _, b in half)
    spread = sum((t - mean_t) ** 2 for t, _ in half)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (b - mean_b) for t, b in half) / spread


async def batch_load(
    stack: LaunchedStack, make: Submissions, items: int, per_batch: int = 5000
) -> Result:
    """`items` submissions through the batch queue in BatchSubmissions of `per_batch`."""
    batches = []
    for offset in range(0, items, per_batch):
        batch = events_pb2.BatchSubmission(
            batch_id=f"bench-{make.run}-{offset}", center_id=make.center_id
        )
        batch.items.extend(make() for _ in range(min(per_batch, items - offset)))
        batches.append(batch)
    started = time.perf_counter()
    results = await send_batches(
        stack.env["SANAD_AMQP_URL"], stack.env["SANAD_AMQP_PREFIX"], batches, wait_s=3600
    )
    accepted = sum(len(r.accepted) for r in results)
    return Result(time.perf_counter() - started, completed=accepted, errors=items - accepted)


async def seed_governorate(stack: LaunchedStack, scale: float) -> SeedSummary:
    """Ad Dakhiliyah's 74 centres with 2023-2024 history (times `scale`) through the batch queue,
    as `sanadctl seed` loads it: the realistic spread of days, centres and services that the
    reports are measured over (the batch figure's items all fall on one centre and one day)."""
    plan = SeedPlan(governorate="DA", years=(2023, 2024), scale=scale)
    targets = Targets(stack.target("registry"), stack.env["SANAD_AMQP_URL"],
                      stack.env["SANAD_AMQP_PREFIX"], timeout_s=60)  # fmt: skip
    return await seed(plan, targets)


async def report_latencies(target: str, year: int, calls: int) -> tuple[Result, Result]:
    """Repeated GetGovernorateReport and GetAwardLeaderboard for DA; latencies of each."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = metrics_pb2_grpc.MetricsServiceStub(channel)
        report = await closed_loop_count(
            lambda: stub.GetGovernorateReport(
                metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=year),
                timeout=120,
            ),
            calls,
        )
        board = await closed_loop_count(
            lambda: stub.GetAwardLeaderboard(
                metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=year),
                timeout=120,
            ),
            calls,
        )
    return report, board


async def closed_loop_count(call: Callable[[], Awaitable[object]], calls: int) -> Result:
    """`calls` sequential calls; their latencies."""
    result = Result(0.0)
    started = time.perf_counter()
    for _ in range(calls):
        begin = time.perf_counter()
        await call()
        result.latencies.append(time.perf_counter() - begin)
        result.completed += 1
    result.seconds = time.perf_counter() - started
    return result
