"""The demo seed goes through the real batch queue and worker; the report reads its figures.

Registry and metrics run in-process; the batch worker runs as `python -m workers.batch`. The
volume is scaled to 1% to stay fast; centres, wilayats and Omani staff are the full figures, and
`make demo` loads the full 74,658 completions of 2024 the same way.
"""

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.topology import delete_topology
from sanad.devstack.mongo_server import free_port
from sanad.seed.plan import SeedPlan
from sanad.seed.run import Targets, seed
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics import award
from services.metrics.app import build_app as build_metrics
from services.metrics.settings import MetricsSettings
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.conftest import AMQP_URL, unique
from tests.integration.conftest import in_process_settings, worker_env
from tests.integration.metrics_support import build_rollup_indexes

pytestmark = pytest.mark.integration
PLAN = SeedPlan(seed=11, scale=0.01)


@dataclass
class Seeded:
    metrics: metrics_pb2_grpc.MetricsServiceStub
    summary: object
    targets: Targets
    database: AsyncDatabase


@pytest.fixture(scope="module")
async def seeded(mongo_url: str) -> AsyncIterator[Seeded]:
    """Seeded once for the module: the load is the slow part."""
    database_name, amqp_prefix = unique("seed").replace("-", "_"), unique("seed")
    common = in_process_settings(
        mongo_url, database_name, amqp_url=AMQP_URL, amqp_prefix=amqp_prefix, shutdown_grace_s=0.5
    )
    # As the ingest worker builds them at its start, before the batch worker stores a rollup.
    await build_rollup_indexes(mongo_url, database_name)
    registry = build_registry(RegistrySettings(**common))
    registry_port = await registry.start(0)
    registry_target = f"127.0.0.1:{registry_port}"
    metrics = build_metrics(MetricsSettings(**common, registry_target=registry_target))
    metrics_port = await metrics.start(0)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.batch",
        env=worker_env(
            mongo_url,
            database_name,
            AMQP_URL,
            amqp_prefix,
            SANAD_REGISTRY_TARGET=registry_target,
            SANAD_BATCH_HEALTH_PORT=str(free_port()),
            SANAD_BATCH_METRICS_PORT=str(free_port()),
            SANAD_LOG_LEVEL="WARNING",
        ),
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{metrics_port}")
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        targets = Targets(registry_target, AMQP_URL, amqp_prefix, batch_size=200)
        summary = await asyncio.wait_for(seed(PLAN, targets), 150)
        yield Seeded(
            metrics_pb2_grpc.MetricsServiceStub(channel), summary, targets, client[database_name]
        )
    finally:
        await client.close()
        worker.terminate()
        try:
            await asyncio.wait_for(worker.wait(), 20)
        except TimeoutError:
            worker.kill()
            await worker.wait()
        await channel.close()
        await metrics.stop()
        await registry.stop()
        await delete_topology(AMQP_URL, amqp_prefix)


async def test_the_seeded_report_reads_the_published_figures(seeded: Seeded) -> None:
    load = seeded.summary.load  # type: ignore[attr-defined]
    assert load.problems == []
    assert load.rejected == 0
    report = await seeded.metrics.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024)
    )
    current, previous = report.current, report.previous
    assert current.active_centers == 74
    assert current.wilayats_with_centers == 9
    assert current.omani_staff == 183
    assert current.transactions_completed == PLAN.target(2024) == 747
    assert previous.transactions_completed == PLAN.target(2023)
    assert previous.active_centers == 68
    assert previous.wilayats_with_centers == 9
    assert 5 < report.completed_change_percent < 20


async def test_the_named_winners_top_a_leaderboard_reproducible_from_its_components(
    seeded: Seeded,
) -> None:
    # The volume at 1%, the award's minimum alike (100 completed a year, 1 here): at full scale
    # the least busy centre completed 276 in 2024, and all 74 are ranked.
    board = await seeded.metrics.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=2024, min_completed=1)
    )
    assert len(board.entries) == 74
    assert [e.center_name_ar for e in board.entries[:3]] == [
        "مركز أبراج الشرق",
        "مركز جرنان للخدمات المتميزة",
        "مركز الوسام للطباعة وتخليص المعاملات",
    ]
    w = board.weights
    weights = award.Weights(w.speed, w.quality, w.productivity, w.satisfaction)
    recomputed = []
    for entry in board.entries:
        c = entry.components
        score = 100 * (
            weights.speed * c.speed_score
            + weights.quality * c.quality_score
            + weights.productivity * c.productivity_score
            + weights.satisfaction * c.satisfaction_score
        )
        assert entry.score == pytest.approx(score, abs=1e-4)
        recomputed.append((-round(score, 4), -c.completed, entry.center_id))
    assert [e.rank for e in board.entries] == list(range(1, 75))
    assert [row[2] for row in sorted(recomputed)] == [e.center_id for e in board.entries]


async def test_seeding_again_stores_nothing_twice_and_with_another_batch_size_is_refused(
    seeded: Seeded,
) -> None:
    """Batch ids name a centre, year and chunk: under another batch size they hold other items.
    The first batch then sent is one the worker refuses, and nothing else is sent."""
    stored = await seeded.database.transactions.count_documents({})

    same = await asyncio.wait_for(seed(PLAN, seeded.targets), 150)
    other = await asyncio.wait_for(seed(PLAN, replace(seeded.targets, batch_size=5)), 150)

    assert same.load.problems == []
    assert same.load.accepted == seeded.summary.load.accepted  # type: ignore[attr-defined]
    assert "already used for a batch with other content" in other.load.problems[0]
    assert "another --batch-size" in other.load.problems[1]
    assert other.load.batches == 1
    assert await seeded.database.transactions.count_documents({}) == stored
