"""`make run` logs in to RabbitMQ before it starts anything: a URL the broker refuses is one
line and a non-zero exit, not five processes retrying the login for ever behind a stack that
says it is running."""

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from sanad.devstack.preflight import amqp_problem
from tests.conftest import AMQP_URL

pytestmark = pytest.mark.integration


def with_parts(url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    """The broker URL with another password or vhost."""
    parts = urlsplit(url)
    user = parts.username or "guest"
    secret = parts.password if password is None else password
    netloc = f"{user}:{secret}@{parts.hostname}:{parts.port or 5672}"
    path = parts.path if vhost is None else f"/{vhost}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers AMQP (another kind of server)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(server.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        stop.set()
        thread.join()
        for connection in held:
            connection.close()


def _forward(source: socket.socket, sink: socket.socket, *, channels: bool) -> None:
    """Copy source to sink, as AMQP frames when channels is False: the protocol header and
    the frames of channel 0 (the connection's own) pass, every other frame is dropped."""
    try:
        if channels:
            while data := source.recv(65536):
                sink.sendall(data)
            return
        stream = source.makefile("rb")
        sink.sendall(stream.read(8))  # the protocol header
        while header := stream.read(7):
            _, channel, size = struct.unpack(">BHI", header)
            frame = header + stream.read(size + 1)
            if channel == 0:
                sink.sendall(frame)
    except OSError:
        pass


@pytest.fixture
def broker_that_opens_no_channel() -> Iterator[int]:
    """A port in front of the test broker that lets the login through and then answers no
    channel: a broker that takes connections but is too busy to serve them."""
    upstream = urlsplit(AMQP_URL)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        stop = threading.Event()
        held: list[socket.socket] = []

        def accept() -> None:
            while not stop.is_set():
                try:
                    client = server.accept()[0]
                except TimeoutError:
                    continue
                broker = socket.create_connection((upstream.hostname, upstream.port or 5672))
                held.extend((client, broker))
                for source, sink, channels in ((client, broker, False), (broker, client, True)):
                    threading.Thread(
                        target=_forward,
                        args=(source, sink),
                        kwargs={"channels": channels},
                        daemon=True,
                    ).start()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        stop.set()
        thread.join()
        for connection in held:
            connection.close()


async def _ack(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.ack()


def test_the_brokers_own_url_lets_the_stack_in(amqp_prefix: str) -> None:
    assert amqp_problem(AMQP_URL, amqp_prefix) is None


def test_a_wrong_password_is_one_line_naming_the_setting_not_the_password() -> None:
    problem = amqp_problem(with_parts(AMQP_URL, password="not-the-password-7"))

    assert problem is not None
    assert "refused the user name or password" in problem
    assert "fix SANAD_AMQP_URL" in problem
    assert "not-the-password-7" not in problem
    assert "\n" not in problem


def test_a_vhost_the_user_may_not_use_is_named() -> None:
    problem = amqp_problem(with_parts(AMQP_URL, vhost="no-such-vhost-for-sanad"))

    assert problem is not None
    assert "vhost 'no-such-vhost-for-sanad'" in problem
    assert "fix SANAD_AMQP_URL" in problem


def test_a_port_that_does_not_answer_amqp_is_named_within_the_connect_bound(
    silent_port: int,
) -> None:
    problem = amqp_problem(f"amqp://guest:guest@127.0.0.1:{silent_port}/")

    assert problem is not None
    assert f"127.0.0.1:{silent_port}" in problem
    assert "no AMQP answer within 5 s" in problem


def test_a_broker_that_lets_the_stack_in_but_opens_no_channel_is_named_in_bounded_time(
    broker_that_opens_no_channel: int, amqp_prefix: str
) -> None:
    # make run waited for the queue check for ever, printing nothing.
    url = with_parts(AMQP_URL).replace(
        f":{urlsplit(AMQP_URL).port or 5672}/", f":{broker_that_opens_no_channel}/"
    )
    found: list[str | None] = []
    started = time.monotonic()
    checking = threading.Thread(
        target=lambda: found.append(amqp_problem(url, amqp_prefix)), daemon=True
    )
    checking.start()
    checking.join(timeout=20)

    assert found, "the preflight was still waiting after 20 s"
    problem = found[0]
    assert time.monotonic() - started < 15
    assert problem is not None
    assert f"127.0.0.1:{broker_that_opens_no_channel}" in problem
    assert "did not answer within 5 s" in problem


async def test_a_work_queue_another_stack_consumes_is_named_with_the_prefix_to_set(
    amqp_prefix: str,
) -> None:
    # A second make run with its own data folder and ports but the first one's prefix: the
    # workers of both consumed sanad.ingest, and about half of the first stack's accepted
    # transactions were stored in the second one's database.
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{amqp_prefix}.ingest", auto_delete=True)
        await queue.consume(_ack)

        problem = await asyncio.to_thread(amqp_problem, AMQP_URL, amqp_prefix)

    assert problem is not None
    assert problem.startswith(f"{amqp_prefix}.ingest on RabbitMQ at ")
    assert "has 1 consumer(s) already" in problem
    assert problem.endswith("give this stack its own SANAD_AMQP_PREFIX")


def test_a_prefix_whose_queues_do_not_exist_yet_is_free(amqp_prefix: str) -> None:
    assert amqp_problem(AMQP_URL, amqp_prefix) is None
