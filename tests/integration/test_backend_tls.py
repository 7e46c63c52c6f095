"""MongoDB and RabbitMQ over TLS, as the production profile requires: the services' own clients,
built from their settings, reach a TLS-only server whose certificate they verify with the CA,
and never reach one they cannot verify.

The MongoDB server is a real SecantusDB serving TLS only. The machine's RabbitMQ listens in
plaintext, so a TLS listener in front of it (what RabbitMQ's own TLS listener does) serves the
dev PKI's broker certificate and passes the bytes on to the real broker.
"""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import aio_pika
import pytest
from pymongo.errors import ServerSelectionTimeoutError

from sanad import mongo
from sanad.amqp.publisher import ConfirmedPublisher
from sanad.amqp.topology import SUBMITTED, Topology
from sanad.devstack import mongo_server
from sanad.settings import CommonSettings
from tests.conftest import discard

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_mongo_port(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A SecantusDB that speaks TLS only, with the dev PKI's MongoDB certificate."""
    port = mongo_server.free_port()
    log = tmp_path_factory.mktemp("tls-mongo") / "secantus.log"
    process = mongo_server.start(
        port, ":memory:", log, tls=(pki / "mongodb.pem", pki / "mongodb.key")
    )
    yield port
    discard(process)


def mongo_settings(url: str, ca_file: str = "") -> CommonSettings:
    return CommonSettings(mongo_url=url, mongo_tls_ca_file=ca_file, mongo_timeout_ms=2000)


async def test_a_service_reaches_mongodb_over_tls_with_the_ca_from_its_settings(
    pki: Path, tls_mongo_port: int, database_name: str
) -> None:
    settings = mongo_settings(
        f"mongodb://localhost:{tls_mongo_port}/?directConnection=true&retryWrites=false",
        str(pki / "ca.pem"),
    )
    client = mongo.connect(settings, "tls-test")
    try:
        db = client[database_name]
        await db.things.insert_one({"_id": "over-tls"})
        assert await db.things.find_one({"_id": "over-tls"}) == {"_id": "over-tls"}
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("tls=true", "CERTIFICATE_VERIFY_FAILED"),  # the system CAs do not know the dev CA
        ("tls=false", "reset|closed|timed out"),  # a TLS-only server never answers plaintext
    ],
)
async def test_a_mongodb_server_the_client_cannot_verify_is_never_used(
    tls_mongo_port: int, options: str, reason: str
) -> None:
    settings = mongo_settings(
        f"mongodb://localhost:{tls_mongo_port}/?directConnection=true&{options}"
    )
    client = mongo.connect(settings, "tls-test")
    try:
        with pytest.raises(ServerSelectionTimeoutError, match=reason):
            await client.admin.command("ping")
    finally:
        await client.close()


@dataclass
class TlsListener:
    """A TLS listener on localhost that passes every connection on to the real broker."""

    port: int
    connections: int = 0


@pytest.fixture
async def tls_broker(pki: Path, amqp_url: str) -> AsyncIterator[TlsListener]:
    broker = urlsplit(amqp_url)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "rabbitmq.pem", pki / "rabbitmq.key")
    listener = TlsListener(port=0)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        listener.connections += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(broker.hostname, broker.port or 5672)
        except OSError:
            client_w.close()
            raise
        await asyncio.gather(pipe(client_r, broker_w), pipe(broker_r, client_w))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener


def amqps_url(amqp_url: str, port: int, **query: str) -> str:
    """The broker's URL, as amqps:// to the TLS listener on localhost."""
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@localhost:{port}"
    return urlunsplit(("amqps", netloc, parts.path or "/", urlencode(query), ""))


async def test_a_publisher_reaches_rabbitmq_over_tls_with_the_ca_in_its_url(
    tls_broker: TlsListener, pki: Path, amqp_url: str, amqp_prefix: str
) -> None:
    topology = Topology(amqp_prefix)
    publisher = ConfirmedPublisher(
        amqps_url(amqp_url, tls_broker.port, cafile=str(pki / "ca.pem")), topology
    )
    await asyncio.wait_for(publisher.connect(), 20)
    try:
        await publisher.publish(
            topology.transactions_exchange,
            SUBMITTED,
            b"over tls",
            message_type="sanad.v1.TransactionSubmitted",
            message_id="T-TLS",
        )
    finally:
        await publisher.close()
    assert tls_broker.connections >= 1  # the publisher dialled the TLS listener
    async with await aio_pika.connect(amqp_url) as connection:
        queue = await (await connection.channel()).get_queue(topology.ingest_queue)
        message = await queue.get(timeout=5)
        await message.ack()
    assert (message.body, message.message_id) == (b"over tls", "T-TLS")


async def test_a_publisher_never_talks_to_a_broker_it_cannot_verify(
    tls_broker: TlsListener, amqp_url: str, amqp_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No cafile: the system CAs do not know the dev CA, so no AMQP frame is ever sent.
    publisher = ConfirmedPublisher(amqps_url(amqp_url, tls_broker.port), Topology(amqp_prefix))
    with caplog.at_level(logging.WARNING, "sanad.amqp"), pytest.raises(TimeoutError):
        await asyncio.wait_for(publisher.connect(), 3)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert not publisher.is_healthy()
