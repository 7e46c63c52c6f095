"""A stopping server answers new calls UNAVAILABLE before gRPC stops taking them: gRPC cancels
the calls it took and had not yet handed to a handler, and their callers saw CANCELLED."""

import asyncio
import time

import grpc
import pytest

from sanad.rpc import server
from sanad.rpc.interceptors import ServerInterceptor
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from tests.unit.metrics_stub import started
from tests.unit.waiting import until


class Held(metrics_pb2_grpc.MetricsServiceServicer):
    """Answers once released."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.waiting = 0

    async def GetCenterStats(self, request, context):  # type: ignore[no-untyped-def]
        self.waiting += 1
        await self.released.wait()
        return metrics_pb2.GetCenterStatsResponse()


async def test_calls_arriving_while_it_stops_are_refused_unavailable_and_those_in_flight_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough for the refused call to arrive within it on a busy machine.
    monkeypatch.setattr(server, "REFUSING_S", 2.0)
    monkeypatch.setattr(server, "QUIET_S", 2.0)
    servicer = Held()
    running = await started(servicer)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = metrics_pb2_grpc.MetricsServiceStub(channel)
        request = metrics_pb2.GetCenterStatsRequest(center_id="C1")
        in_flight = asyncio.ensure_future(stub.GetCenterStats(request, timeout=10))
        await until(lambda: servicer.waiting == 1)

        stopping = asyncio.create_task(running.stop(10.0))
        assert running.bookkeeping is not None
        await until(lambda: running.bookkeeping.stopping)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetCenterStats(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "this server is stopping; retry" in (refused.value.details() or "")
        assert servicer.waiting == 1  # refused before the service saw it

        servicer.released.set()
        assert await in_flight == metrics_pb2.GetCenterStatsResponse()
        await stopping


async def test_the_refusal_ends_once_no_call_arrives_for_a_moment() -> None:
    # Idle, a server stops after the quiet moment, not the longest refusal (every test's
    # teardown stops three servers).
    interceptor = ServerInterceptor()
    started = time.monotonic()
    await interceptor.refuse_new_calls(longest_s=30.0, quiet_s=0.05)
    assert time.monotonic() - started < 10.0
    assert interceptor.stopping
