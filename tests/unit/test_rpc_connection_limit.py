"""A gRPC server holds at most SANAD_GRPC_MAX_CONNECTIONS connections, below its open-file limit:
21,000 idle connections took every file intake had, its MongoDB connections' among them."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.rpc.server import SPARE_FILES, connection_limit, server_options, start_server
from sanad.settings import ServerSettings
from tests.unit.metrics_stub import always_up


def test_the_limit_stays_below_the_open_file_limit() -> None:
    assert (
        dict(server_options(4096, max_connections=10))["grpc.max_allowed_incoming_connections"]
        == 10
    )
    assert "grpc.max_allowed_incoming_connections" not in dict(server_options(4096))
    assert connection_limit(4096, open_files=1_048_576) == 4096
    assert connection_limit(4096, open_files=1024) == 1024 - SPARE_FILES
    assert connection_limit(4096, open_files=100) == 1


async def test_a_connection_past_the_limit_is_closed_and_its_caller_sees_unavailable() -> None:
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1", grpc_max_connections=2), 0, [], {"up": always_up}
    )
    # Each channel its own connection (channels of one process share them by default).
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{running.port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(3)
    ]
    request = health_pb2.HealthCheckRequest(service="liveness")
    try:
        for channel in channels[:2]:
            await health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channels[2]).Check(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        for channel in channels:
            await channel.close()
        await running.stop(0.5)
