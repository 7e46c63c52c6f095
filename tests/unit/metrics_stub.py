"""A real gRPC server, built as every service builds one, serving a test MetricsService."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.settings import ServerSettings
from sanad.v1 import metrics_pb2_grpc


async def always_up() -> bool:
    return True


@asynccontextmanager
async def serving(
    servicer: metrics_pb2_grpc.MetricsServiceServicer,
) -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    """The servicer behind start_server's interceptors on a free port; a stub to call it."""
    async with (
        serving_on_port(servicer) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield metrics_pb2_grpc.MetricsServiceStub(channel)


async def started(servicer: metrics_pb2_grpc.MetricsServiceServicer) -> RunningServer:
    """The servicer behind start_server's interceptors on a free port, started; its caller
    stops it."""
    return await start_server(
        ServerSettings(grpc_host="127.0.0.1"),
        0,
        [
            Registration(
                "sanad.v1.MetricsService",
                lambda s: metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, s),
            )
        ],
        checks={"always": always_up},
    )


@asynccontextmanager
async def serving_on_port(servicer: metrics_pb2_grpc.MetricsServiceServicer) -> AsyncIterator[int]:
    """The servicer behind start_server's interceptors on a free port; the port (for sanadctl)."""
    running = await started(servicer)
    try:
        yield running.port
    finally:
        await running.stop(0.5)
