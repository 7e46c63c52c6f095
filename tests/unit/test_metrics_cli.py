"""sanadctl stats, report and leaderboard print readable tables from the metrics service."""

import socket
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from sanad.cli import metrics_commands
from sanad.cli.__main__ import main
from sanad.v1 import metrics_pb2, metrics_pb2_grpc


class FakeMetrics(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.report: metrics_pb2.GetGovernorateReportResponse | None = None

    def GetCenterStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return metrics_pb2.GetCenterStatsResponse(
            center_id=request.center_id, stats=metrics_pb2.Stats(submitted=4, completed=3)
        )

    def GetWilayatStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        return metrics_pb2.GetWilayatStatsResponse(
            wilayat_code=request.wilayat_code, centers=17, stats=metrics_pb2.Stats(completed=74658)
        )

    def GetGovernorateReport(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        if self.report is not None:
            return self.report
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
        unranked = metrics_pb2.AwardEntry(rank=0, center_id="C-2", score=97.5)
        return metrics_pb2.GetAwardLeaderboardResponse(
            governorate_code="DA",
            year=2024,
            weights=metrics_pb2.AwardWeights(speed=0.35, quality=0.25, productivity=0.25),
            entries=[entry, unranked],
            formula="score = 100 * ...",
            min_completed=request.min_completed if request.HasField("min_completed") else 100,
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
    assert "270,000.500 OMR" in out
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


def test_leaderboard_marks_the_centres_below_the_minimum_unranked(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    assert run(target, "leaderboard") == 0
    assert not servicer.requests[-1].HasField("min_completed")  # the service's minimum
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.rstrip().endswith("C-2")]
    assert row.split()[:2] == ["-", "97.50"]
    assert "ranked: centres that completed at least 100 in the year" in out
    assert run(target, "leaderboard", "--min-completed", "0") == 0
    assert servicer.requests[-1].HasField("min_completed")
    assert "ranked: centres that completed at least 0 in the year" in capsys.readouterr().out


def test_stats_of_a_wilayat_for_a_year(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    assert run(target, "stats", "--wilayat", "DA-NIZ", "--year", "2024") == 0
    out = capsys.readouterr().out
    assert "centers:" in out
    assert "74,658" in out  # counts read as fees and the report's do
    request = servicer.requests[-1]
    assert request.start_time.ToJsonString() == "2024-01-01T00:00:00Z"
    assert request.end_time.ToJsonString() == "2025-01-01T00:00:00Z"


def test_stats_needs_exactly_one_of_a_centre_or_a_wilayat(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    assert run(target, "stats") == 2
    said = "error: give a centre id or --wilayat, one of them"
    assert capsys.readouterr().err == f"{said} (neither given)\n"
    assert run(target, "stats", "C1", "--wilayat", "DA-NIZ") == 2
    assert capsys.readouterr().err == f"{said} (both given)\n"


def test_report_as_json_is_one_object(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, target = fake
    assert run(target, "--json", "report") == 0
    assert capsys.readouterr().out.count("\n") == 1


@pytest.mark.parametrize("year", ["0", "9999", "-1", "100000"])
@pytest.mark.parametrize("target_args", [["A-1"], ["--wilayat", "DA-NIZ"]])
def test_stats_for_a_year_no_timestamp_can_bound_is_a_usage_error_in_one_line(
    fake: tuple[FakeMetrics, str],
    capsys: pytest.CaptureFixture[str],
    year: str,
    target_args: list[str],
) -> None:
    servicer, target = fake
    assert run(target, "stats", *target_args, f"--year={year}") == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --year must be between 1 and 9998\n"
    assert servicer.requests == []


def test_stats_for_the_first_and_last_years_a_timestamp_can_bound(
    fake: tuple[FakeMetrics, str],
) -> None:
    servicer, target = fake
    assert run(target, "stats", "A-1", "--year", "1") == 0
    assert run(target, "stats", "A-1", "--year", "9998") == 0
    assert servicer.requests[-1].end_time.ToJsonString() == "9999-01-01T00:00:00Z"


def test_report_prints_n_a_when_there_is_nothing_to_compare_with(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    servicer.report = metrics_pb2.GetGovernorateReportResponse(
        governorate_code="MU",
        current=metrics_pb2.YearFigures(year=2024, transactions_completed=10),
        previous=metrics_pb2.YearFigures(year=2023),
        completed_change_undefined=True,
    )
    assert run(target, "report", "--governorate", "MU") == 0
    out = capsys.readouterr().out
    assert "n/a" in out
    assert "+0.00%" not in out


def test_report_of_the_year_in_progress_says_what_it_compares(
    fake: tuple[FakeMetrics, str], capsys: pytest.CaptureFixture[str]
) -> None:
    servicer, target = fake
    servicer.report = metrics_pb2.GetGovernorateReportResponse(
        governorate_code="DA",
        current=metrics_pb2.YearFigures(year=2026, transactions_completed=125),
        previous=metrics_pb2.YearFigures(year=2025, transactions_completed=6_110),
        completed_change_percent=13.64,
        previous_completed_compared=1_110,
    )
    servicer.report.compared_until.FromJsonString("2025-03-06T00:00:00Z")
    assert run(target, "report", "--year", "2026") == 0
    out = capsys.readouterr().out
    assert "+13.64%" in out
    assert "change: 2026 so far against 2025 up to 05 Mar (1,110 completed)" in out


@pytest.mark.parametrize("command", ["report", "leaderboard"])
def test_report_and_leaderboard_default_to_the_current_year_in_utc(
    fake: tuple[FakeMetrics, str],
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: 2024, whatever the year. Half an hour into 2031 in UTC is still 2030 in the
    # Americas: the year is UTC's, as the metrics service's years are.
    new_year = datetime(2031, 1, 1, 0, 30, tzinfo=UTC)
    monkeypatch.setattr(metrics_commands, "utcnow", lambda: new_year)
    servicer, target = fake

    assert run(target, command) == 0
    assert servicer.requests[-1].year == 2031
    assert run(target, command, "--year", "2024") == 0
    assert servicer.requests[-1].year == 2024
    with pytest.raises(SystemExit):
        run(target, command, "--help")
    assert "(default: the current one in UTC, 2031)" in capsys.readouterr().out
