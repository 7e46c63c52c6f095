"""The metrics domain's answers as sanad.v1 messages."""

from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import metrics_pb2
from services.metrics import award
from services.metrics.domain import Stats
from services.metrics.report import Report, YearFigures


def stats_to_proto(stats: Stats) -> metrics_pb2.Stats:
    return metrics_pb2.Stats(
        submitted=stats.get("submitted"),
        recorded=stats.get("recorded"),
        completed=stats.get("completed"),
        rejected=stats.get("rejected"),
        cancelled=stats.get("cancelled"),
        fees_baisa=stats.get("fees_baisa"),
        refunds_due_baisa=stats.get("refunds_due_baisa"),
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
