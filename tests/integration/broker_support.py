"""A broker that can be cut: a TCP proxy in front of RabbitMQ, and the fixtures that route a test
module's `stack` through it.

A test module takes the two fixtures by importing `proxy_fixture` and `amqp_url_through_proxy`
(with `# noqa: F401`): pytest registers an imported fixture as the module's own, so `amqp_url` is
overridden in that module and nowhere else. They are named with `name=` so that a test's `proxy`
argument does not shadow the import.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from sanad.devstack.mongo_server import free_port
from tests.conftest import AMQP_URL


class BrokerProxy:
    """Forwards TCP to RabbitMQ; cut() drops every connection and refuses new ones until heal();
    freeze() keeps connections open but forwards no byte until thaw(), as a broker that stops
    reading (an alarm) or a network that drops packets looks."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5672
        self.listen_port = free_port()
        self.url = upstream.replace(parts.netloc.split("@")[-1], f"127.0.0.1:{self.listen_port}")
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def heal(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)

    async def cut(self) -> None:
        # Every connection aborted before the pipes flow again: bytes a freeze held back (a
        # worker's acks) are dropped with them, never delivered late.
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        self.thaw()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()


@pytest.fixture(name="proxy")
async def proxy_fixture() -> AsyncIterator[BrokerProxy]:
    """A healed proxy in front of the test broker, cut when the test ends."""
    broker = BrokerProxy(AMQP_URL)
    await broker.heal()
    yield broker
    await broker.cut()


@pytest.fixture(name="amqp_url")
def amqp_url_through_proxy(proxy: BrokerProxy) -> str:
    """Everything in the importing module's tests reaches RabbitMQ through the proxy."""
    return proxy.url
