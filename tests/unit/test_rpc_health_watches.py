"""Health Watch streams are capped per server: health is open to every caller and charged to no
identity, and each stream holds a task for as long as its caller keeps it."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.rpc import server
from sanad.rpc.server import start_server
from sanad.settings import ServerSettings
from tests.unit.metrics_stub import always_up
from tests.unit.waiting import until


async def test_a_watch_past_the_cap_is_resource_exhausted_and_one_ending_frees_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "MAX_HEALTH_WATCHES", 2)
    running = await start_server(ServerSettings(grpc_host="127.0.0.1"), 0, [], {"up": always_up})
    request = health_pb2.HealthCheckRequest(service="liveness")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watches = [stub.Watch(request) for _ in range(2)]
            for watch in watches:
                first = await watch.read()
                assert first.status == health_pb2.HealthCheckResponse.SERVING

            refused = stub.Watch(request, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await refused.read()
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 2 health Watch streams" in (caught.value.details() or "")
            # Check is never refused for it.
            assert (await stub.Check(request, timeout=10)).status == first.status

            watches[0].cancel()
            await until(lambda: running.health.servicer.watching == 1)  # type: ignore[attr-defined]
            again = stub.Watch(request, timeout=10)
            assert (await again.read()).status == first.status
            again.cancel()
            watches[1].cancel()
            await asyncio.sleep(0)
    finally:
        await running.stop(0.5)
