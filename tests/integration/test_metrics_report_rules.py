"""The report's rules against the real registry and SecantusDB: partial days, where a centre that
moved counts, the change when there is nothing to compare with, and unknown places."""

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.devstack.mongo_server import free_port
from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2, registry_pb2
from tests.integration.metrics_support import Apps, count, register, rollup, running_apps

pytestmark = pytest.mark.integration


@pytest.fixture
async def apps(mongo_url: str, database_name: str) -> AsyncIterator[Apps]:
    async with running_apps(mongo_url, database_name) as running:
        yield running


def report_of(governorate: str, year: int) -> metrics_pb2.GetGovernorateReportRequest:
    return metrics_pb2.GetGovernorateReportRequest(governorate_code=governorate, year=year)


def board_of(governorate: str, year: int) -> metrics_pb2.GetAwardLeaderboardRequest:
    return metrics_pb2.GetAwardLeaderboardRequest(governorate_code=governorate, year=year)


async def move(apps: Apps, center_id: str, wilayat: str, staff: int) -> None:
    await apps.registry.UpdateCenter(
        registry_pb2.UpdateCenterRequest(
            center=registry_pb2.Center(
                id=center_id, governorate_code=wilayat[:2], wilayat_code=wilayat
            ),
            update_mask=FieldMask(paths=["governorate_code", "wilayat_code"]),
        )
    )
    await apps.until_metrics_knows(center_id, staff, wilayat)


async def test_today_so_far_reads_today_and_midnight_to_midnight_reads_its_days(
    apps: Apps,
) -> None:
    center = await register(apps, "DA-NIZ", 2, "مركز")
    await count(
        apps,
        [
            rollup("2024-03-04", center, "DA-NIZ", submitted=1),
            rollup("2024-03-05", center, "DA-NIZ", submitted=3),
        ],
    )

    async def submitted(start: str, end: str) -> tuple[int, int]:
        by_centre = metrics_pb2.GetCenterStatsRequest(center_id=center)
        by_wilayat = metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-NIZ")
        for request in (by_centre, by_wilayat):
            request.start_time.FromJsonString(start)
            request.end_time.FromJsonString(end)
        centre = await apps.metrics.GetCenterStats(by_centre)
        wilayat = await apps.metrics.GetWilayatStats(by_wilayat)
        return centre.stats.submitted, wilayat.stats.submitted

    assert await submitted("2024-03-05T00:00:00Z", "2024-03-05T15:00:00Z") == (3, 3)
    assert await submitted("2024-03-04T00:00:00Z", "2024-03-05T00:00:00Z") == (1, 1)
    assert await submitted("2024-03-04T12:00:00Z", "2024-03-05T00:00:01Z") == (4, 4)


async def test_a_centre_counts_each_year_where_it_worked_that_year(apps: Apps) -> None:
    mover = await register(apps, "DA-NIZ", 4, "مركز متنقل")
    stayer = await register(apps, "DA-BAH", 2, "مركز ثابت")
    await count(
        apps,
        [
            rollup("2023-05-01", mover, "DA-NIZ", submitted=30, completed=30),
            rollup("2023-05-01", stayer, "DA-BAH", submitted=10, completed=10),
            # In 2024 it moved to Seeb in the spring: 10 made in Nizwa, 30 in Seeb.
            rollup("2024-02-01", mover, "DA-NIZ", submitted=10, completed=10),
            rollup("2024-06-01", mover, "MA-SEB", submitted=30, completed=28, rejected=2),
        ],
    )
    await move(apps, mover, "MA-SEB", 4)

    da_2023 = await apps.metrics.GetGovernorateReport(report_of("DA", 2023))
    ma_2023 = await apps.metrics.GetGovernorateReport(report_of("MA", 2023))
    assert (da_2023.current.active_centers, da_2023.current.omani_staff) == (2, 6)
    assert da_2023.current.wilayats_with_centers == 2
    assert da_2023.current.transactions_completed == 40
    assert (ma_2023.current.active_centers, ma_2023.current.transactions_completed) == (0, 0)
    da_board = await apps.metrics.GetAwardLeaderboard(board_of("DA", 2023))
    assert sorted(e.center_id for e in da_board.entries) == sorted([mover, stayer])
    assert (await apps.metrics.GetAwardLeaderboard(board_of("MA", 2023))).entries == []

    # 2024: once, in Muscat, where most were made; Ad Dakhiliyah keeps its 10 completions.
    da_2024 = await apps.metrics.GetGovernorateReport(report_of("DA", 2024))
    ma_2024 = await apps.metrics.GetGovernorateReport(report_of("MA", 2024))
    assert (da_2024.current.active_centers, da_2024.current.transactions_completed) == (0, 10)
    assert (ma_2024.current.active_centers, ma_2024.current.transactions_completed) == (1, 28)
    (entry,) = (await apps.metrics.GetAwardLeaderboard(board_of("MA", 2024))).entries
    assert (entry.center_id, entry.components.completed, entry.components.rejected) == (
        mover,
        38,
        2,
    )
    assert (await apps.metrics.GetAwardLeaderboard(board_of("DA", 2024))).entries == []


async def test_a_change_from_nothing_is_undefined_not_zero(apps: Apps) -> None:
    center = await register(apps, "DA-NIZ", 2, "مركز")
    await count(apps, [rollup("2024-03-01", center, "DA-NIZ", submitted=5, completed=5)])
    report = await apps.metrics.GetGovernorateReport(report_of("DA", 2024))
    assert report.current.transactions_completed == 5
    assert report.completed_change_undefined
    assert report.previous_completed_compared == 0


@pytest.mark.parametrize("code", ["XX", "da"])
async def test_an_unknown_governorate_is_invalid_argument(apps: Apps, code: str) -> None:
    for call, request in (
        (apps.metrics.GetGovernorateReport, report_of(code, 2024)),
        (apps.metrics.GetAwardLeaderboard, board_of(code, 2024)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request)  # type: ignore[operator]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == [
            ("governorate_code", f"unknown governorate {code!r}")
        ]


async def test_an_unknown_wilayat_is_invalid_argument(apps: Apps) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await apps.metrics.GetWilayatStats(metrics_pb2.GetWilayatStatsRequest(wilayat_code="XX-1"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("wilayat_code", "unknown wilayat 'XX-1'")]


async def test_a_known_governorate_without_centres_answers_zeros(apps: Apps) -> None:
    report = await apps.metrics.GetGovernorateReport(report_of("WU", 2024))
    assert (report.current.active_centers, report.current.transactions_completed) == (0, 0)
    assert report.completed_change_undefined
    wilayat = await apps.metrics.GetWilayatStats(
        metrics_pb2.GetWilayatStatsRequest(wilayat_code="WU-DUQ")
    )
    assert (wilayat.centers, wilayat.stats.submitted) == (0, 0)


async def test_without_the_registry_a_report_is_unavailable(
    mongo_url: str, database_name: str
) -> None:
    away = f"127.0.0.1:{free_port()}"
    async with running_apps(
        mongo_url, database_name, registry_target=away, grpc_outbound_timeout_s=1.0
    ) as apps:
        for call, request in (
            (apps.metrics.GetGovernorateReport, report_of("XX", 2024)),
            (apps.metrics.GetAwardLeaderboard, board_of("DA", 2024)),
            (apps.metrics.GetWilayatStats, metrics_pb2.GetWilayatStatsRequest(wilayat_code="Q")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request)  # type: ignore[operator]
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_centre_the_copy_has_not_brought_yet_is_answered_and_an_unknown_one_is_not(
    apps: Apps,
) -> None:
    # A helper's GetCenterStats straight after RegisterCenter was NOT_FOUND 5 times in 10: the
    # watch stream had not brought the centre to metrics' copy yet. Here the copy is made to lag.
    center = await register(apps, "DA-NIZ", 2, "مركز")
    del apps.directory.facts[center]

    stats = await apps.metrics.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id=center))

    assert (stats.center_id, stats.stats.submitted) == (center, 0)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await apps.metrics.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="C-NONE"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
