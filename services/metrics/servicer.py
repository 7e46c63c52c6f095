"""sanad.v1.MetricsService over gRPC: translates protobuf to rollup reads."""

from typing import TypeAlias

import grpc

from sanad.errors import Invalid, Violation
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics.domain import Stats, sum_rollups
from services.metrics.store import MetricsStore

Context: TypeAlias = grpc.aio.ServicerContext


def _day_range(request: metrics_pb2.GetCenterStatsRequest) -> tuple[str, str]:
    first = (
        request.start_time.ToDatetime().strftime("%Y-%m-%d")
        if request.HasField("start_time")
        else "0000-00-00"
    )
    last = (
        request.end_time.ToDatetime().strftime("%Y-%m-%d")
        if request.HasField("end_time")
        else "9999-99-99"
    )
    return first, last


def stats_to_proto(stats: Stats) -> metrics_pb2.Stats:
    c = stats.counts
    return metrics_pb2.Stats(
        submitted=c["submitted"],
        recorded=c["recorded"],
        completed=c["completed"],
        rejected=c["rejected"],
        cancelled=c["cancelled"],
        fees_baisa=c["fees_baisa"],
        completed_within_sla=c["completed_within_sla"],
        mean_completion_seconds=stats.mean_completion_seconds,
        ratings=c["ratings"],
        mean_rating=stats.mean_rating,
    )


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    """Each RPC: protobuf in, rollup reads, protobuf out."""

    def __init__(self, store: MetricsStore) -> None:
        self.store = store

    async def GetCenterStats(
        self, request: metrics_pb2.GetCenterStatsRequest, context: Context
    ) -> metrics_pb2.GetCenterStatsResponse:
        if not request.center_id:
            raise Invalid([Violation("center_id", "is required")])
        first, last = _day_range(request)
        stats = sum_rollups(await self.store.center_rollups(request.center_id, first, last))
        return metrics_pb2.GetCenterStatsResponse(
            center_id=request.center_id, stats=stats_to_proto(stats)
        )
