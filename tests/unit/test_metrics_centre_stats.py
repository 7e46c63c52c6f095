"""GetCenterStats of a centre id the registry never had is NOT_FOUND naming it, and sanadctl
says so in one line; a registered centre with no transactions answers zeros."""

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from sanad.cli.__main__ import main
from sanad.errors import Unavailable
from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2
from services.metrics.servicer import MetricsServicer
from tests.unit.metrics_fakes import FakeStore, facts, made, queries
from tests.unit.metrics_stub import serving, serving_on_port

Served = tuple[MetricsServicer, FakeStore]


@pytest.fixture
def served() -> Served:
    q = queries(
        [made("2024-03-01", "A", "DA-NIZ", submitted=2, completed=1)],
        [facts("A", "DA-NIZ", 2), facts("IDLE", "DA-BAH", 1)],
    )
    assert isinstance(q.store, FakeStore)
    return MetricsServicer(q), q.store


@pytest.fixture
async def port(served: Served) -> AsyncIterator[int]:
    async with serving_on_port(served[0]) as bound:
        yield bound


async def test_stats_of_a_centre_the_registry_never_had_are_not_found_naming_it(
    served: Served,
) -> None:
    servicer, _ = served
    async with serving(servicer) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="NOPE"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "centre 'NOPE' not found"


@pytest.mark.parametrize(
    ("method", "field"), [("GetCenterStats", "center_id"), ("GetWilayatStats", "wilayat_code")]
)
async def test_a_key_longer_than_any_the_registry_gives_out_is_invalid_not_repeated(
    served: Served, method: str, field: str
) -> None:
    # A 3 MB centre id was repeated whole in its NOT_FOUND's log line (observability helper).
    servicer, _ = served
    request = getattr(metrics_pb2, f"{method}Request")(**{field: "X" * 129})
    async with serving(servicer) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, method)(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [(field, "must be at most 128 characters")]


class UnreadableDirectory:
    """The registry's copy while its watch is down."""

    async def centers_by_id(self, center_ids: object) -> dict[str, object]:
        raise Unavailable("the registry's centres are not loaded yet")

    async def exists(self, center_id: str) -> bool:
        raise Unavailable("the registry's centres are not loaded yet")


async def test_a_centre_with_transactions_is_answered_while_the_registry_cannot_be_read(
    served: Served,
) -> None:
    """A centre with transactions in the period exists: its stats do not wait for the registry.
    Only one without them is looked up there, and then waits for it."""
    servicer, _ = served
    servicer.queries.directory = UnreadableDirectory()  # type: ignore[assignment]
    async with serving(servicer) as stub:
        busy = await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="A"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="IDLE"))
    assert (busy.stats.submitted, busy.stats.completed) == (2, 1)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_registered_centre_without_transactions_answers_zeros(served: Served) -> None:
    servicer, _ = served
    async with serving(servicer) as stub:
        idle = await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="IDLE"))
        busy = await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="A"))
    assert idle.center_id == "IDLE"
    assert idle.stats == metrics_pb2.Stats()
    assert (busy.stats.submitted, busy.stats.completed) == (2, 1)


async def test_sanadctl_stats_of_an_unknown_centre_prints_one_error_line(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--metrics", f"127.0.0.1:{port}", "stats", "NOPE"]
    code = await asyncio.to_thread(main, argv, {})
    captured = capsys.readouterr()
    assert code == 1
    # With the request id sanadctl sent, which the server returned: what finds its log line.
    assert re.fullmatch(
        r"error: NOT_FOUND: centre 'NOPE' not found \(request id [0-9a-f]{32}\)\n", captured.err
    )
    assert captured.out == ""
