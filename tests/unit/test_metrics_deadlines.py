"""Every MetricsService RPC answers UNAVAILABLE before its caller's deadline when MongoDB or the
registry's lists do not answer: a read's own bound (5 s) was longer than most callers wait,
and they got DEADLINE_EXCEEDED instead. A request with bad fields is still refused naming them
while the registry's lists do not answer."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from sanad import deadline
from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics.queries import MetricsQueries
from services.metrics.servicer import MetricsServicer
from tests.unit.metrics_fakes import REFS, WEIGHTS, FakeDirectory, FakePlaces, FakeStore, facts
from tests.unit.metrics_stub import serving

Call = Callable[[metrics_pb2_grpc.MetricsServiceStub], Awaitable[Any]]


async def hang(*args: Any, **kwargs: Any) -> Any:
    await asyncio.Event().wait()  # a database or a registry that never answers


class HungStore(FakeStore):
    sums_by = hang  # type: ignore[assignment]
    year_by_place = hang  # type: ignore[assignment]


class HungDirectory(FakeDirectory):
    centers_ever_in = hang  # type: ignore[assignment]
    centers_by_id = hang  # type: ignore[assignment]


class HungPlaces(FakePlaces):
    check_governorate = hang  # type: ignore[assignment]
    check_wilayat = hang  # type: ignore[assignment]


@pytest.fixture
async def hung(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    # A margin wide enough that a stall of this shared machine cannot turn the answer into
    # DEADLINE_EXCEEDED; what is tested is that the answer comes before the deadline at all.
    monkeypatch.setattr(deadline, "MARGIN_S", 0.5)
    monkeypatch.setattr(deadline, "MARGIN_SHARE", 0.5)
    directory = HungDirectory([facts("A", "DA-NIZ", 2)])
    servicer = MetricsServicer(MetricsQueries(HungStore(), directory, HungPlaces(), WEIGHTS, REFS))
    async with serving(servicer) as stub:
        yield stub


CALLS: dict[str, Call] = {
    "GetCenterStats": lambda stub: stub.GetCenterStats(
        metrics_pb2.GetCenterStatsRequest(center_id="A"), timeout=1
    ),
    "GetWilayatStats": lambda stub: stub.GetWilayatStats(
        metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-NIZ"), timeout=1
    ),
    "GetGovernorateReport": lambda stub: stub.GetGovernorateReport(
        metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2024), timeout=1
    ),
    "GetAwardLeaderboard": lambda stub: stub.GetAwardLeaderboard(
        metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=2024), timeout=1
    ),
}


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_an_rpc_nothing_answers_is_unavailable_before_its_deadline(
    hung: metrics_pb2_grpc.MetricsServiceStub, rpc: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await CALLS[rpc](hung)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_bad_fields_are_named_while_the_registrys_lists_do_not_answer(
    hung: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hung.GetGovernorateReport(
            metrics_pb2.GetGovernorateReportRequest(governorate_code="XX", year=1900), timeout=1
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(refused.value)] == ["year"]
