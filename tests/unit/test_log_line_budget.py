"""Lines written for each failed call, publish or streamed item are budgeted: at most ten a
second for each method and code (each exchange and kind of failure), the rest counted and said
in the next line written, while the metrics count every one; failures of our own always get
their line."""

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect

from sanad import errors
from sanad.telemetry.logs import BUDGETS, LineBudget
from sanad.telemetry.metrics import GRPC_HANDLED
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.intake import failures
from tests.unit.metrics_stub import serving
from tests.unit.test_intake_publisher import NackingChannel, publisher_on


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_budget_admits_its_lines_a_window_and_counts_the_rest_for_the_next_line() -> None:
    clock = Clock()
    budget = LineBudget(lines=3, per_s=1.0, clock=clock, wall_clock=clock)
    assert [budget.admit("a") for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.admit("b") == 0  # keys are budgeted apart
    clock.now += 0.99
    assert budget.admit("a") is None
    clock.now += 0.01
    assert [budget.admit("a") for _ in range(2)] == [3, 0]
    assert budget.fields("a", {"x": 1}) == {"x": 1}
    assert budget.fields("a") is None
    clock.now += 1.0
    assert budget.fields("a", {"x": 1}) == {
        "x": 1,
        "left_out": 1,
        "left_out_since": "1970-01-01T00:16:41.000Z",  # when it was left out
    }
    # Of several left out, the time of the first.
    assert [budget.admit("a") for _ in range(2)] == [0, 0]
    clock.now += 0.5
    assert budget.admit("a") is None
    clock.now += 0.25
    assert budget.admit("a") is None
    clock.now += 0.25
    found = budget.fields("a")
    assert found == {"left_out": 2, "left_out_since": "1970-01-01T00:16:42.500Z"}


class Failing(metrics_pb2_grpc.MetricsServiceServicer):
    async def GetCenterStats(self, request, context):  # type: ignore[no-untyped-def]
        if request.center_id == "bug":
            raise RuntimeError("a bug of ours")
        if request.center_id == "missing":
            raise errors.NotFound("centre 'missing' not found")
        if request.center_id == "busy":
            raise errors.RateLimited("over the caller's rate", 1.0)
        if request.center_id == "slow":
            await asyncio.sleep(5)
        raise errors.Unavailable("MongoDB did not answer")


@pytest.fixture
async def stub() -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    async with serving(Failing()) as stub:
        yield stub


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every budget on one stopped clock: nothing here depends on how fast the calls run."""
    clock = Clock()
    for budget in list(BUDGETS):  # the processes' own, made as their modules were imported
        monkeypatch.setattr(budget, "clock", clock)
        monkeypatch.setattr(budget, "_keys", {})
    return clock


def call_lines(caplog: pytest.LogCaptureFixture, code: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "grpc_code", None) == code]


async def test_failed_calls_of_a_method_and_code_write_ten_lines_a_second_and_count_all(
    stub: metrics_pb2_grpc.MetricsServiceStub, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    handled = GRPC_HANDLED.labels(
        "unary", "sanad.v1.MetricsService", "GetCenterStats", "UNAVAILABLE"
    )
    before = handled._value.get()  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="sanad.rpc"):
        for _ in range(25):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"))
        assert len(call_lines(caplog, "UNAVAILABLE")) == 10
        assert all(not hasattr(r, "left_out") for r in call_lines(caplog, "UNAVAILABLE"))
        clock.now += 1.0
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="c"))
    assert handled._value.get() - before == 26  # type: ignore[attr-defined]
    last = call_lines(caplog, "UNAVAILABLE")[-1]
    assert (last.levelno, last.left_out) == (logging.WARNING, 15)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "case",
    [("busy", None, "RESOURCE_EXHAUSTED"), ("slow", 0.05, "DEADLINE_EXCEEDED")],
    ids=["overload", "deadline"],
)
async def test_an_overload_or_a_deadline_is_budgeted_as_an_outage_is(
    stub: metrics_pb2_grpc.MetricsServiceStub,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, float | None, str],
) -> None:
    center_id, deadline_s, code = case
    with caplog.at_level(logging.INFO, logger="sanad.rpc"):
        for _ in range(12):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetCenterStats(
                    metrics_pb2.GetCenterStatsRequest(center_id=center_id), timeout=deadline_s
                )
        for _ in range(100):  # the server ends a call whose deadline passed a moment later
            if len(call_lines(caplog, code)) >= 10:
                break
            await asyncio.sleep(0.02)
    assert len(call_lines(caplog, code)) == 10


async def test_a_failure_no_outage_explains_keeps_its_line_every_time(
    stub: metrics_pb2_grpc.MetricsServiceStub, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A client's bad requests, refusals and conflicts are not an outage: each line may be the
    one an operator looks for, by its request id."""
    with caplog.at_level(logging.INFO, logger="sanad.rpc"):
        for _ in range(12):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="missing"))
    assert len(call_lines(caplog, "NOT_FOUND")) == 12


async def test_every_internal_failure_keeps_its_line(
    stub: metrics_pb2_grpc.MetricsServiceStub, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sanad.rpc"):
        for _ in range(12):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="bug"))
    assert len(call_lines(caplog, "INTERNAL")) == 12
    assert len([r for r in caplog.records if r.exc_info]) == 12


def refused_publishes(exchange: str) -> float:
    labels = {"exchange": exchange, "outcome": "refused"}
    return REGISTRY.get_sample_value("sanad_amqp_published_total", labels) or 0.0


async def test_refused_publishes_write_ten_lines_a_second_and_count_all(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    channel = NackingChannel()
    channel.is_closed = False  # type: ignore[attr-defined]
    publisher = publisher_on(channel)
    before = refused_publishes("t.budget")
    with caplog.at_level(logging.INFO, logger="sanad.amqp"):
        for n in range(14):
            with pytest.raises(errors.Unavailable):
                await publisher.publish("t.budget", "k", b"", message_type="T", message_id=f"{n}")
        clock.now += 1.0
        with pytest.raises(errors.Unavailable):
            await publisher.publish("t.budget", "k", b"", message_type="T", message_id="last")
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refused_publishes("t.budget") - before == 15
    assert len(lines) == 11
    assert lines[-1].left_out == 4  # type: ignore[attr-defined]


def test_streamed_items_answered_unavailable_write_ten_lines_a_second(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sanad.intake"):
        answers = [failures.item_failure(AutoReconnect("gone"), n, f"r-{n}") for n in range(13)]
    assert {type(a) for a in answers} == {errors.Unavailable}
    lines = [r for r in caplog.records if "UNAVAILABLE" in r.getMessage()]
    assert [r.item_index for r in lines] == list(range(10))  # type: ignore[attr-defined]
