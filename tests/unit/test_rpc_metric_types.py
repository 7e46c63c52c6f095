"""The interceptor labels every RPC metric with its grpc_type, so streams stay out of latency."""

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import REGISTRY

from sanad.rpc.interceptors import ServerInterceptor

SERVICE = "sanad.test.Kinds"


async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def client_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    return b"".join([r async for r in requests])


async def server_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield request
    if request == b"watch":
        await asyncio.sleep(30)  # a watch: open until the client goes away
    yield request


async def flood(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    while True:  # a replay faster than the client reads: gRPC blocks sending
        yield b"x" * 100_000


async def bidi_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


HANDLERS = grpc.method_handlers_generic_handler(
    SERVICE,
    {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream),
        "Flood": grpc.unary_stream_rpc_method_handler(flood),
    },
)


@dataclass(frozen=True)
class Series:
    """One method's RPC metric samples, read from the default registry."""

    grpc_type: str
    method: str

    def labels(self, **extra: str) -> dict[str, str]:
        return {
            "grpc_type": self.grpc_type,
            "grpc_service": SERVICE,
            "grpc_method": self.method,
            **extra,
        }

    def sample(self, name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, self.labels(**extra)) or 0.0

    def snapshot(self) -> tuple[float, float, float]:
        """Started, handled OK, and observed handling times."""
        return (
            self.sample("sanad_grpc_server_started_total"),
            self.sample("sanad_grpc_server_handled_total", grpc_code="OK"),
            self.sample("sanad_grpc_server_handling_seconds_count"),
        )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ServerInterceptor()])
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(0)


async def _items() -> AsyncIterator[bytes]:
    for item in (b"a", b"b"):
        yield item


async def _call(channel: grpc.aio.Channel, grpc_type: str, method: str) -> None:
    path = f"/{SERVICE}/{method}"
    if grpc_type == "unary":
        await channel.unary_unary(path)(b"x")
    elif grpc_type == "client_stream":
        await channel.stream_unary(path)(_items())
    elif grpc_type == "server_stream":
        assert [r async for r in channel.unary_stream(path)(b"x")] == [b"x", b"x"]
    else:
        assert [r async for r in channel.stream_stream(path)(_items())] == [b"a", b"b"]


@pytest.mark.parametrize(
    ("grpc_type", "method"),
    [
        ("unary", "Unary"),
        ("client_stream", "ClientStream"),
        ("server_stream", "ServerStream"),
        ("bidi_stream", "BidiStream"),
    ],
)
async def test_each_rpc_kind_is_started_handled_and_timed_under_its_grpc_type(
    channel: grpc.aio.Channel, grpc_type: str, method: str
) -> None:
    series = Series(grpc_type, method)
    before = series.snapshot()

    await _call(channel, grpc_type, method)

    after = series.snapshot()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


async def test_an_abandoned_watch_stream_is_counted_cancelled_as_a_server_stream(
    channel: grpc.aio.Channel,
) -> None:
    series = Series("server_stream", "ServerStream")
    before = series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED")
    timed = series.sample("sanad_grpc_server_handling_seconds_count")
    watch = channel.unary_stream(f"/{SERVICE}/ServerStream")(b"watch")

    assert await watch.read() == b"watch"
    watch.cancel()

    for _ in range(100):  # the server sees the cancellation a moment after the client
        if series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED") > before:
            break
        await asyncio.sleep(0.02)
    assert series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED") == before + 1
    assert series.sample("sanad_grpc_server_handling_seconds_count") == timed + 1
    assert Series("unary", "ServerStream").sample("sanad_grpc_server_handling_seconds_count") == 0


async def test_a_stream_cancelled_while_grpc_is_sending_is_counted_cancelled(
    channel: grpc.aio.Channel,
) -> None:
    series = Series("server_stream", "Flood")
    before = series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED")
    flood = channel.unary_stream(f"/{SERVICE}/Flood")(b"")
    await flood.read()
    await asyncio.sleep(0.3)  # the flow-control window fills: the server waits in its send
    flood.cancel()

    for _ in range(100):  # closed at its yield when gRPC lets go of it
        gc.collect()
        if series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED") > before:
            break
        await asyncio.sleep(0.02)
    assert series.sample("sanad_grpc_server_handled_total", grpc_code="CANCELLED") == before + 1
    assert series.sample("sanad_grpc_server_started_total") == sum(
        series.sample("sanad_grpc_server_handled_total", grpc_code=code.name)
        for code in grpc.StatusCode
    )
