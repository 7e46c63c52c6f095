"""An idle stream survives the clients' keepalive pings; short intervals stand in for 30 s."""

import asyncio
import signal
import sys
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


CLIENT = """
import sys, time, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_stream("/test.Idle/Stream")(b"")
next(call)
print("ready", flush=True)
time.sleep(600)
"""


async def test_a_stream_whose_client_froze_is_ended_by_the_servers_pings() -> None:
    # A client that stops answering without closing (a frozen process, a dropped network)
    # held its streams, and their share of its stream cap, until gRPC's default server ping of
    # every 2 hours: the server now pings at the keepalive and closes an unanswered connection.
    ended = asyncio.Event()

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield b"first"
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    handler = grpc.method_handlers_generic_handler(
        "test.Idle", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    registration = Registration("test.Idle", lambda s: s.add_generic_rpc_handlers((handler,)))
    settings = ServerSettings(grpc_host="127.0.0.1")
    running = await start_server(settings, 0, [registration], {}, keepalive_ms=SHORT_KEEPALIVE_MS)
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, f"127.0.0.1:{running.port}", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert client.stdout is not None
        assert await asyncio.wait_for(client.stdout.readline(), 30) == b"ready\n"
        client.send_signal(signal.SIGSTOP)
        await asyncio.wait_for(ended.wait(), 30)
    finally:
        client.kill()
        await client.wait()
        await running.stop(0)
