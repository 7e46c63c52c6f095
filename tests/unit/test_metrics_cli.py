"""sanadctl stats, report and leaderboard print readable tables from the metrics service."""

import socket
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from sanad.cli.__main__ import main
from sanad.v1 import metrics_pb2, metrics_pb2_grpc


class FakeMetrics(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []

    def GetCenterStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return metrics_pb2.GetCenterStatsResponse(
            center_id=request.center_id, stats=metrics_pb2.Stats(submitted=4, completed=3)
        )

    def GetWilayatStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return metrics_pb2.GetWilayatStatsResponse(
            wilayat_code=request.wilayat_code, centers=17, stats=metrics_pb2.Stats(completed=9)
        )

    def GetGovernorateReport(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return metrics_pb2.GetGovernorateReportResponse(
            governorate_code="DA",
            current=metrics_pb2.YearFigures(
                year=2024,
                active_centers=74,
                wilayats_with_centers=9,
                transactions_completed=74_658,
                omani_staff=183,
                fees_baisa=270_000_500,
            ),
            previous=metrics_pb2.YearFigures(year=2023, transactions_completed=66_240),
            completed_change_percent=12.71,
        )

    def GetAwardLeaderboard(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        entry = metrics_pb2.AwardEntry(
            rank=1,
            center_id="C-1",
            center_name_ar="مركز أبراج الشرق",
            score=91.25,
            components=metrics_pb2.AwardComponents(within_sla_share=0.985, mean_rating=4.8),
        )
        return metrics_pb2.GetAwardLeaderboardResponse(
            governorate_code="DA",
            year=2024,
            weights=metrics_pb2.AwardWeights(speed=0.35, quality=0.25, productivity=0.25),
            entries=[entry],
            formula="score = 100 * ...",
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeMetrics, str]]:
    servicer = FakeMetrics()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def run(target: str, *args: str) -> int:
    return main(["--metrics", target, *args], environ={})


def test_report_prints_both_years_and_the_change(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    assert run(target, "report", "--governorate", "DA", "--year", "2024") == 0
    out = capsys.readouterr().out
    assert "74,658" in out
    assert "66,240" in out
    assert "+12.71%" in out
    assert "183" in out
    assert "270000.500 OMR" in out
    assert servicer.requests[-1].year == 2024


def test_leaderboard_prints_each_component_beside_the_score(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    assert run(target, "leaderboard", "--limit", "3") == 0
    out = capsys.readouterr().out
    assert "مركز أبراج الشرق" in out
    assert "91.25" in out
    assert "98.5%" in out
    assert "weights: speed 0.35" in out
    assert "formula:" in out


def test_stats_of_a_wilayat_for_a_year(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    assert run(target, "stats", "--wilayat", "DA-NIZ", "--year", "2024") == 0
    assert "centers:" in capsys.readouterr().out
    request = servicer.requests[-1]
    assert request.start_time.ToJsonString() == "2024-01-01T00:00:00Z"
    assert request.end_time.ToJsonString() == "2025-01-01T00:00:00Z"


def test_stats_needs_exactly_one_of_a_centre_or_a_wilayat(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    assert run(target, "stats") == 2
    assert "error:" in capsys.readouterr().err


def test_report_as_json_is_one_object(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    assert run(target, "--json", "report") == 0
    assert capsys.readouterr().out.count("\n") == 1
