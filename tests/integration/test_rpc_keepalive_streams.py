"""An idle stream survives the clients' keepalive pings; short intervals stand in for 30 s."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from sanad.rpc import channel
from sanad.rpc.server import Registration, start_server
from sanad.settings import ServerSettings

pytestmark = pytest.mark.integration

METHOD = "/test.Idle/Stream"
# gRPC sends pings at most once a second, whatever the keepalive; with two strikes allowed a
# server that refuses them sends GOAWAY "too_many_pings" within about four seconds.
SHORT_KEEPALIVE_MS = 1000
IDLE_S = 6.0


def idle_stream(release: asyncio.Event) -> Registration:
    """A server stream that sends one message, stays silent until released, then sends another."""

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield b"first"
        await release.wait()
        yield b"second"

    handler = grpc.method_handlers_generic_handler(
        "test.Idle", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    return Registration("test.Idle", lambda s: s.add_generic_rpc_handlers((handler,)))


async def hold_idle(server_keepalive_ms: int, idle_s: float) -> list[bytes]:
    """Open the stream over a channel pinging every SHORT_KEEPALIVE_MS and keep it idle."""
    release = asyncio.Event()
    settings = ServerSettings(grpc_host="127.0.0.1")
    running = await start_server(
        settings, 0, [idle_stream(release)], {}, keepalive_ms=server_keepalive_ms
    )
    try:
        async with channel.insecure_channel(
            f"127.0.0.1:{running.port}", 4096, keepalive_ms=SHORT_KEEPALIVE_MS
        ) as opened:
            call = opened.unary_stream(METHOD)(b"", timeout=idle_s + 10)
            received = [await call.read()]
            await asyncio.sleep(idle_s)
            release.set()
            received.append(await call.read())
            return received  # type: ignore[return-value]
    finally:
        await running.stop(0)


async def test_an_idle_stream_outlives_many_client_keepalive_pings() -> None:
    assert await hold_idle(SHORT_KEEPALIVE_MS, IDLE_S) == [b"first", b"second"]


async def test_a_server_stricter_than_the_client_keepalive_drops_the_idle_stream() -> None:
    """The failure the shared constant prevents: GOAWAY "too_many_pings" on an idle stream."""
    with pytest.raises(grpc.aio.AioRpcError) as dropped:
        await hold_idle(60 * SHORT_KEEPALIVE_MS, IDLE_S)
    assert dropped.value.code() is grpc.StatusCode.UNAVAILABLE
