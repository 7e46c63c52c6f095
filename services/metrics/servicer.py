"""sanad.v1.MetricsService over gRPC: translates protobuf to queries and back."""

from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sanad import rollups
from sanad.domain.clock import EPOCH
from sanad.errors import Invalid, Violation, check
from sanad.rpc.timestamps import from_timestamp, to_timestamp
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics import award, periods
from services.metrics.domain import Stats
from services.metrics.queries import MetricsQueries
from services.metrics.report import Report, YearFigures

Context: TypeAlias = grpc.aio.ServicerContext
FIRST_YEAR, LAST_YEAR = 2000, 2100
SECONDS_PER_DAY = 86_400


def _moment(request: Any, field: str, violations: list[Violation]) -> datetime | None:
    """The time in `field`, None when it is unset; a set zero Timestamp is the epoch, not unset."""
    if not request.HasField(field):
        return None
    try:
        return from_timestamp(getattr(request, field), field) or EPOCH
    except Invalid as bad:
        violations.extend(bad.violations)
        return None


def _at_midnight(stamp: Timestamp) -> bool:
    """Whether the Timestamp is exactly a UTC midnight (to the nanosecond)."""
    return stamp.seconds % SECONDS_PER_DAY == 0 and stamp.nanos == 0


def _checked_day_range(request: Any, key_field: str) -> tuple[str, str]:
    """The rollup days [first, last) a request's [start, end) touches, unset ends open; every bad
    field refused.

    Rollups count per UTC day, so a day partly inside the period counts whole: the start is
    rounded down to its day, the end up to the next midnight unless it is one already. A period
    of "today so far" reads today; one from midnight to midnight reads exactly its days.
    """
    violations = [] if getattr(request, key_field) else [Violation(key_field, "is required")]
    start = _moment(request, "start_time", violations)
    end = _moment(request, "end_time", violations)
    if start is not None and end is not None and start >= end:
        violations.append(Violation("end_time", "must be after start_time"))
    check(violations)
    first = rollups.day_of(start) if start else periods.OPEN_START
    if end is None:
        return first, periods.OPEN_END
    if _at_midnight(request.end_time):
        return first, rollups.day_of(end)
    return first, periods.day_after(end)


def _check_year_request(governorate_code: str, year: int) -> None:
    violations = []
    if not governorate_code:
        violations.append(Violation("governorate_code", "is required"))
    if not FIRST_YEAR <= year <= LAST_YEAR:
        violations.append(Violation("year", f"must be between {FIRST_YEAR} and {LAST_YEAR}"))
    if violations:
        raise Invalid(violations)


def stats_to_proto(stats: Stats) -> metrics_pb2.Stats:
    return metrics_pb2.Stats(
        submitted=stats.get("submitted"),
        recorded=stats.get("recorded"),
        completed=stats.get("completed"),
        rejected=stats.get("rejected"),
        cancelled=stats.get("cancelled"),
        fees_baisa=stats.get("fees_baisa"),
        completed_within_sla=stats.get("completed_within_sla"),
        mean_completion_seconds=stats.mean_completion_seconds,
        ratings=stats.get("ratings"),
        mean_rating=stats.mean_rating,
    )


def figures_to_proto(figures: YearFigures) -> metrics_pb2.YearFigures:
    return metrics_pb2.YearFigures(
        year=figures.year,
        active_centers=figures.active_centers,
        wilayats_with_centers=figures.wilayats_with_centers,
        transactions_completed=figures.transactions_completed,
        omani_staff=figures.omani_staff,
        fees_baisa=figures.fees_baisa,
    )


def report_to_proto(
    governorate_code: str, report: Report
) -> metrics_pb2.GetGovernorateReportResponse:
    change = report.completed_change_percent
    return metrics_pb2.GetGovernorateReportResponse(
        governorate_code=governorate_code,
        current=figures_to_proto(report.current),
        previous=figures_to_proto(report.previous),
        completed_change_percent=change or 0.0,
        completed_change_undefined=change is None,
        previous_completed_compared=report.previous_completed_compared,
        compared_until=to_timestamp(report.compared_until),
    )


def entry_to_proto(entry: award.Entry) -> metrics_pb2.AwardEntry:
    c = entry.components
    return metrics_pb2.AwardEntry(
        rank=entry.rank,
        center_id=entry.center.center_id,
        center_name_ar=entry.center.name_ar,
        center_name_en=entry.center.name_en,
        score=entry.score,
        components=metrics_pb2.AwardComponents(
            within_sla_share=c.within_sla_share,
            median_completion_hours=c.median_completion_hours,
            rejection_rate=c.rejection_rate,
            completed_per_omani_staff=c.completed_per_omani_staff,
            mean_rating=c.mean_rating,
            speed_score=c.speed_score,
            quality_score=c.quality_score,
            productivity_score=c.productivity_score,
            satisfaction_score=c.satisfaction_score,
            completed=c.completed,
            rejected=c.rejected,
            omani_staff=c.omani_staff,
        ),
    )


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    """Each RPC: protobuf in, a query, protobuf out."""

    def __init__(self, queries: MetricsQueries) -> None:
        self.queries = queries

    async def GetCenterStats(
        self, request: metrics_pb2.GetCenterStatsRequest, context: Context
    ) -> metrics_pb2.GetCenterStatsResponse:
        days = _checked_day_range(request, "center_id")
        stats = await self.queries.center_stats(request.center_id, *days)
        return metrics_pb2.GetCenterStatsResponse(
            center_id=request.center_id, stats=stats_to_proto(stats)
        )

    async def GetWilayatStats(
        self, request: metrics_pb2.GetWilayatStatsRequest, context: Context
    ) -> metrics_pb2.GetWilayatStatsResponse:
        days = _checked_day_range(request, "wilayat_code")
        centers, stats = await self.queries.wilayat_stats(request.wilayat_code, *days)
        return metrics_pb2.GetWilayatStatsResponse(
            wilayat_code=request.wilayat_code, centers=centers, stats=stats_to_proto(stats)
        )

    async def GetGovernorateReport(
        self, request: metrics_pb2.GetGovernorateReportRequest, context: Context
    ) -> metrics_pb2.GetGovernorateReportResponse:
        _check_year_request(request.governorate_code, request.year)
        report = await self.queries.report(request.governorate_code, request.year)
        return report_to_proto(request.governorate_code, report)

    async def GetAwardLeaderboard(
        self, request: metrics_pb2.GetAwardLeaderboardRequest, context: Context
    ) -> metrics_pb2.GetAwardLeaderboardResponse:
        _check_year_request(request.governorate_code, request.year)
        if request.limit < 0:
            raise Invalid([Violation("limit", "must not be negative")])
        board = await self.queries.leaderboard(
            request.governorate_code, request.year, request.limit
        )
        w, r = board.weights, board.references
        return metrics_pb2.GetAwardLeaderboardResponse(
            governorate_code=request.governorate_code,
            year=request.year,
            weights=metrics_pb2.AwardWeights(
                speed=w.speed,
                quality=w.quality,
                productivity=w.productivity,
                satisfaction=w.satisfaction,
            ),
            entries=[entry_to_proto(entry) for entry in board.entries],
            references=metrics_pb2.AwardReferences(
                median_ceiling_hours=r.median_ceiling_hours,
                productivity_target_per_staff=r.productivity_target_per_staff,
            ),
            formula=award.FORMULA,
        )
