"""The bookkeeping interceptor logs OK calls at DEBUG and every failed call at WARNING."""

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from sanad import errors
from sanad.telemetry.metrics import GRPC_HANDLED
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from tests.unit.metrics_stub import serving


class Answering(metrics_pb2_grpc.MetricsServiceServicer):
    async def GetCenterStats(self, request, context):  # type: ignore[no-untyped-def]
        if request.center_id == "missing":
            raise errors.NotFound("centre 'missing' not found")
        if request.center_id.startswith("far"):
            raise errors.NotFound(f"centre {request.center_id!r} not found")
        if request.center_id == "slow":
            await asyncio.sleep(5)
        return metrics_pb2.GetCenterStatsResponse()


@pytest.fixture
async def stub() -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    async with serving(Answering()) as stub:
        yield stub


def _call_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sanad.rpc" and hasattr(r, "grpc_code")]


async def test_an_ok_call_logs_at_debug_and_no_line_at_info(
    stub: metrics_pb2_grpc.MetricsServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sanad.rpc"):
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"))
    assert _call_lines(caplog) == []
    with caplog.at_level(logging.DEBUG, logger="sanad.rpc"):
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"))
    assert [(r.levelno, r.grpc_code) for r in _call_lines(caplog)] == [(logging.DEBUG, "OK")]  # type: ignore[attr-defined]


async def test_a_failed_call_logs_a_warning_with_its_code_and_detail(
    stub: metrics_pb2_grpc.MetricsServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sanad.rpc"), pytest.raises(grpc.aio.AioRpcError):
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="missing"))
    [line] = _call_lines(caplog)
    assert line.levelno == logging.WARNING
    assert (line.grpc_code, line.detail) == ("NOT_FOUND", "centre 'missing' not found")  # type: ignore[attr-defined]


async def test_a_failure_repeating_long_input_logs_it_cut_as_the_callers_status_is(
    stub: metrics_pb2_grpc.MetricsServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    # A centre id of 3 MB made a 3 MB line, once a call (observability helper).
    far = "far" + "B" * 60_000
    with caplog.at_level(logging.INFO, logger="sanad.rpc"), pytest.raises(grpc.aio.AioRpcError):
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id=far))
    [line] = _call_lines(caplog)
    detail: str = line.detail  # type: ignore[attr-defined]
    assert len(detail.encode()) <= 1000
    assert detail.startswith("centre 'farBBB")
    assert detail.endswith(f"({len(f'centre {far!r} not found')} characters)")


async def test_handled_calls_are_counted_by_code(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    def handled(code: str) -> float:
        value = GRPC_HANDLED.labels("unary", "sanad.v1.MetricsService", "GetCenterStats", code)
        return value._value.get()  # type: ignore[attr-defined]

    ok, missing = handled("OK"), handled("NOT_FOUND")
    await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="missing"))
    assert (handled("OK") - ok, handled("NOT_FOUND") - missing) == (1, 1)


async def test_a_call_whose_deadline_passes_is_counted_and_timed(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    handled = GRPC_HANDLED.labels(
        "unary", "sanad.v1.MetricsService", "GetCenterStats", "DEADLINE_EXCEEDED"
    )
    before = handled._value.get()  # type: ignore[attr-defined]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="slow"), timeout=0.2)

    assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    async def counted() -> bool:
        return bool(handled._value.get() - before == 1)  # type: ignore[attr-defined]

    for _ in range(100):  # the server sees the cancellation a moment after the client
        if await counted():
            break
        await asyncio.sleep(0.02)
    assert await counted()
