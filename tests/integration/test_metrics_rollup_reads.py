"""The metrics service reads rollups in MongoDB and centre facts from the real registry's watch."""

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2, registry_pb2
from tests.integration.metrics_support import Apps, count, register, rollup, running_apps

pytestmark = pytest.mark.integration


@pytest.fixture
async def apps(mongo_url: str, database_name: str) -> AsyncIterator[Apps]:
    async with running_apps(mongo_url, database_name) as running:
        yield running


async def test_report_and_leaderboard_come_from_rollups_and_registry_facts(apps: Apps) -> None:
    fast = await register(apps, "DA-NIZ", 2, "مركز سريع")
    slow = await register(apps, "DA-BAH", 3, "مركز بطيء")
    idle = await register(apps, "DA-IZK", 4, "مركز خامل")  # no transactions, never activated
    await count(
        apps,
        [
            rollup(
                "2024-03-01",
                fast,
                "DA-NIZ",
                submitted=100,
                completed=90,
                rejected=2,
                fees_baisa=300_000,
                completed_within_sla=88,
                ratings=10,
                rating_sum=48,
                completion_hist={"le_3600": 90},
            ),
            rollup(
                "2024-12-31",
                slow,
                "DA-BAH",
                completed=40,
                rejected=10,
                completed_within_sla=20,
                completion_hist={"le_172800": 40},
            ),
            rollup("2023-06-01", fast, "DA-NIZ", completed=50, fees_baisa=100_000),
            rollup("2025-01-01", slow, "DA-BAH", completed=999),  # another year
        ],
    )
    report = await apps.metrics.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024)
    )
    assert report.current.active_centers == 2
    assert report.current.wilayats_with_centers == 2
    assert report.current.transactions_completed == 130
    assert report.current.omani_staff == 5
    assert report.current.fees_baisa == 300_000
    assert report.previous.transactions_completed == 50
    assert report.previous.active_centers == 1
    assert report.completed_change_percent == pytest.approx(160.0)

    board = await apps.metrics.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=2024)
    )
    assert [e.center_id for e in board.entries] == [fast, slow]
    assert idle not in [e.center_id for e in board.entries]
    top = board.entries[0].components
    assert (top.completed, top.rejected, top.omani_staff) == (90, 2, 2)
    assert top.mean_rating == pytest.approx(4.8)
    assert board.formula
    assert board.weights.speed + board.weights.quality > 0


async def test_a_centre_that_only_received_transactions_is_on_report_and_leaderboard(
    apps: Apps,
) -> None:
    busy = await register(apps, "DA-NIZ", 2, "مركز")
    refused = await register(apps, "DA-ADM", 1, "مركز مرفوض")  # every transaction rejected
    await count(
        apps,
        [
            rollup("2024-03-01", busy, "DA-NIZ", submitted=5, completed=5),
            rollup("2024-03-01", refused, "DA-ADM", submitted=3, rejected=3),
        ],
    )
    report = await apps.metrics.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024)
    )
    board = await apps.metrics.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=2024)
    )
    assert report.current.active_centers == 2
    assert sorted(e.center_id for e in board.entries) == sorted([busy, refused])
    (last,) = [e for e in board.entries if e.center_id == refused]
    assert (last.components.completed, last.components.rejected) == (0, 3)


async def test_an_end_time_before_the_start_time_is_refused_on_end_time(apps: Apps) -> None:
    request = metrics_pb2.GetCenterStatsRequest(center_id="any")
    request.start_time.FromJsonString("2024-01-01T00:00:00Z")
    request.end_time.FromJsonString("1970-01-01T00:00:00Z")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await apps.metrics.GetCenterStats(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("end_time", "must be after start_time")]


async def test_a_registry_change_after_the_first_report_reaches_the_next_one(apps: Apps) -> None:
    center = await register(apps, "DA-NIZ", 2, "مركز")
    await count(apps, [rollup("2024-03-01", center, "DA-NIZ", completed=5)])
    request = metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024)
    assert (await apps.metrics.GetGovernorateReport(request)).current.omani_staff == 2
    await apps.registry.UpdateCenter(
        registry_pb2.UpdateCenterRequest(
            center=registry_pb2.Center(id=center, omani_staff=7, total_staff=7),
            update_mask=FieldMask(paths=["omani_staff", "total_staff"]),
        )
    )
    await apps.until_metrics_knows(center, 7)
    assert (await apps.metrics.GetGovernorateReport(request)).current.omani_staff == 7


async def test_centre_and_wilayat_stats_honour_the_period(apps: Apps) -> None:
    center = await register(apps, "DA-NIZ", 2, "مركز")
    await count(
        apps,
        [
            rollup(
                "2024-01-01", center, "DA-NIZ", submitted=3, completed=2, completion_seconds_sum=60
            ),
            rollup("2025-01-01", center, "DA-NIZ", submitted=5),
        ],
    )
    whole = await apps.metrics.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id=center))
    assert whole.stats.submitted == 8
    assert whole.stats.mean_completion_seconds == pytest.approx(30.0)
    request = metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-NIZ")
    request.start_time.FromJsonString("2024-01-01T00:00:00Z")
    request.end_time.FromJsonString("2025-01-01T00:00:00Z")
    wilayat = await apps.metrics.GetWilayatStats(request)
    assert (wilayat.centers, wilayat.stats.submitted) == (1, 3)


async def test_a_ragged_period_adds_daily_and_monthly_rollups_without_counting_twice(
    apps: Apps,
) -> None:
    center = await register(apps, "DA-SAM", 2, "مركز")
    days = {"2023-12-10": 1, "2023-12-20": 2, "2024-01-15": 4, "2024-02-05": 8, "2024-02-20": 16}
    await count(apps, [rollup(day, center, "DA-SAM", submitted=n) for day, n in days.items()])
    request = metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-SAM")
    request.start_time.FromJsonString("2023-12-15T00:00:00Z")
    request.end_time.FromJsonString("2024-02-10T00:00:00Z")
    wilayat = await apps.metrics.GetWilayatStats(request)
    assert (wilayat.centers, wilayat.stats.submitted) == (1, 2 + 4 + 8)


async def test_a_centre_that_moved_wilayat_counts_in_each_for_its_time_there(apps: Apps) -> None:
    center = await register(apps, "DA-MAN", 2, "مركز")
    # Submitted in Manah in January, in Adam from July: the year's rollups keep them apart.
    await count(
        apps,
        [
            rollup("2025-01-10", center, "DA-MAN", submitted=1),
            *(rollup(f"2025-{month:02d}-10", center, "DA-ADM", submitted=1) for month in (7, 8)),
        ],
    )

    def year_of(wilayat: str) -> metrics_pb2.GetWilayatStatsRequest:
        request = metrics_pb2.GetWilayatStatsRequest(wilayat_code=wilayat)
        request.start_time.FromJsonString("2025-01-01T00:00:00Z")
        request.end_time.FromJsonString("2026-01-01T00:00:00Z")
        return request

    manah = await apps.metrics.GetWilayatStats(year_of("DA-MAN"))
    adam = await apps.metrics.GetWilayatStats(year_of("DA-ADM"))
    assert (manah.centers, manah.stats.submitted) == (1, 1)
    assert (adam.centers, adam.stats.submitted) == (1, 2)


async def test_a_report_without_a_governorate_is_invalid_argument(apps: Apps) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await apps.metrics.GetGovernorateReport(metrics_pb2.GetGovernorateReportRequest(year=1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
