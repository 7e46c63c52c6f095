"""sanad.v1.MetricsService over gRPC: translates protobuf to queries and back.

Each RPC runs within what is left of its caller's deadline (sanad.mongo.within): its reads of
MongoDB and its waits for the registry's lists end before the caller stops waiting, as
UNAVAILABLE; each read is bounded by the store's own timeout as well.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sanad import mongo
from sanad.deadline import caller_deadline
from sanad.domain.codes import MAX_CODE_LENGTH, required_code_violations
from sanad.errors import Invalid, Unavailable, Violation, check, collected
from sanad.rpc.timestamps import time_field
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics import award, periods
from services.metrics.convert import entry_to_proto, report_to_proto, stats_to_proto
from services.metrics.domain import check_year_request
from services.metrics.queries import MetricsQueries

Context: TypeAlias = grpc.aio.ServicerContext
SECONDS_PER_DAY = 86_400


def _exact(stamp: Timestamp) -> tuple[int, int]:
    return stamp.seconds, stamp.nanos


def _at_midnight(stamp: Timestamp) -> bool:
    """Whether the Timestamp is exactly a UTC midnight (to the nanosecond)."""
    return stamp.seconds % SECONDS_PER_DAY == 0 and stamp.nanos == 0


def _checked_day_range(request: Any, key_field: str) -> tuple[str, str]:
    """The rollup days a request's [start, end) touches (periods.day_range); every bad field
    refused, a key longer than any the registry gives out among them (it would be repeated in a
    NOT_FOUND and its log line)."""
    violations = required_code_violations(key_field, getattr(request, key_field))
    start = collected(violations, lambda: time_field(request, "start_time"))
    end = collected(violations, lambda: time_field(request, "end_time"))
    # Compared to the nanosecond, as sent: datetimes keep only microseconds.
    if (
        start is not None
        and end is not None
        and _exact(request.start_time) >= _exact(request.end_time)
    ):
        violations.append(Violation("end_time", "must be after start_time"))
    check(violations)
    return periods.day_range(start, end, end_at_midnight=_at_midnight(request.end_time))


async def _naming_the_code_too(
    refused: Invalid,
    code: str,
    check_code: Callable[[str], Awaitable[None]],
    context: Context,
) -> Invalid:
    """`refused`, with the code's own violation added when the code is given and unknown:
    a request is answered with every bad field at once, the code among them. The codes are the
    registry's, so they are checked only after the request's own fields; while the registry's
    list cannot be read, or not within half of what is left of the caller's deadline, the other
    fields are named alone. A code too long for any the registry gives out is refused for that
    alone (_checked_day_range), not also as unknown."""
    if not code or len(code) > MAX_CODE_LENGTH:
        return refused
    left = caller_deadline(context).left()
    try:
        async with asyncio.timeout(None if left is None else left / 2):
            await check_code(code)
    except Invalid as unknown:
        return Invalid([*refused.violations, *unknown.violations])
    except (Unavailable, TimeoutError):
        pass
    return refused


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


def _within_deadline(
    rpc: Callable[[Any, _Request, Context], Awaitable[_Response]],
) -> Callable[[Any, _Request, Context], Coroutine[Any, Any, _Response]]:
    """The RPC run within what is left of its caller's deadline, read as the call begins."""

    @functools.wraps(rpc)
    async def call(self: Any, request: _Request, context: Context) -> _Response:
        left = caller_deadline(context).left()
        async with mongo.within(left, waiting_for="the database or the registry"):
            return await rpc(self, request, context)

    return call


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    """Each RPC: protobuf in, a query, protobuf out."""

    def __init__(self, queries: MetricsQueries) -> None:
        self.queries = queries

    async def _check_year_request(
        self,
        context: Context,
        governorate_code: str,
        year: int,
        limit: int = 0,
        min_completed: int = 0,
    ) -> None:
        try:
            # This year by the clock that decides the year in progress.
            this_year = self.queries.clock().year
            check_year_request(governorate_code, year, this_year, limit, min_completed)
        except Invalid as refused:
            raise await _naming_the_code_too(
                refused, governorate_code, self.queries.places.check_governorate, context
            ) from None

    @_within_deadline
    async def GetCenterStats(
        self, request: metrics_pb2.GetCenterStatsRequest, context: Context
    ) -> metrics_pb2.GetCenterStatsResponse:
        days = _checked_day_range(request, "center_id")
        stats = await self.queries.center_stats(request.center_id, *days)
        return metrics_pb2.GetCenterStatsResponse(
            center_id=request.center_id, stats=stats_to_proto(stats)
        )

    @_within_deadline
    async def GetWilayatStats(
        self, request: metrics_pb2.GetWilayatStatsRequest, context: Context
    ) -> metrics_pb2.GetWilayatStatsResponse:
        try:
            days = _checked_day_range(request, "wilayat_code")
        except Invalid as refused:
            raise await _naming_the_code_too(
                refused, request.wilayat_code, self.queries.places.check_wilayat, context
            ) from None
        centers, stats = await self.queries.wilayat_stats(request.wilayat_code, *days)
        return metrics_pb2.GetWilayatStatsResponse(
            wilayat_code=request.wilayat_code, centers=centers, stats=stats_to_proto(stats)
        )

    @_within_deadline
    async def GetGovernorateReport(
        self, request: metrics_pb2.GetGovernorateReportRequest, context: Context
    ) -> metrics_pb2.GetGovernorateReportResponse:
        await self._check_year_request(context, request.governorate_code, request.year)
        report = await self.queries.report(request.governorate_code, request.year)
        return report_to_proto(request.governorate_code, report)

    @_within_deadline
    async def GetAwardLeaderboard(
        self, request: metrics_pb2.GetAwardLeaderboardRequest, context: Context
    ) -> metrics_pb2.GetAwardLeaderboardResponse:
        minimum = request.min_completed if request.HasField("min_completed") else None
        await self._check_year_request(
            context, request.governorate_code, request.year, request.limit, minimum or 0
        )
        board = await self.queries.leaderboard(
            request.governorate_code, request.year, request.limit, minimum
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
            min_completed=board.min_completed,
        )
