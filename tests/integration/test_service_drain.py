"""SIGTERM drains a gRPC service (DESIGN 5.7): health turns NOT_SERVING first, a call in flight
still gets its answer, and the process exits 0.

The service runs as its own process (`python -m services.intake`), its broker connection through
a proxy that the test freezes: a submission then waits for its confirm, in flight for as long as
the test wants, while the process is told to stop.

Health's turn is read from the process's own log line ("health NOT_SERVING", written when the
verdict changes), not over gRPC: the server refuses new calls (Check answers UNAVAILABLE) as soon
as its drain starts, and Health/Watch, which would carry the change on an open stream, answers
INTERNAL through our interceptor (it expects an async generator; grpc_health's aio Watch writes
with context.write).
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from sanad.devstack.mongo_server import free_port
from sanad.records import REQUESTS_COLLECTION
from sanad.v1 import intake_pb2, intake_pb2_grpc
from tests.integration.broker_support import BrokerProxy, proxy_fixture  # noqa: F401
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Generous bounds that turn a hang into a failure; no assertion is about how long anything took.
WITHIN_S = 60.0
NOT_SERVING_LINE = "health NOT_SERVING"


@dataclass
class Service:
    """A service process whose log lines are kept as they come (a thread reads its stderr, so
    the pipe never fills)."""

    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            sys.stderr.write(line)  # shown with the test's output when it fails

    def logged_since(self, start: int, text: str) -> bool:
        return any(text in line for line in self.lines[start:])

    def in_flight(self, method: str) -> float:
        """Calls of `method` started and not answered yet, from the process's own counters."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as page:
            text = page.read().decode()
        started = handled = 0.0
        for line in text.splitlines():
            if f'grpc_method="{method}"' not in line:
                continue
            if line.startswith("sanad_grpc_server_started_total{"):
                started += float(line.rsplit(" ", 1)[1])
            elif line.startswith("sanad_grpc_server_handled_total{"):
                handled += float(line.rsplit(" ", 1)[1])
        return started - handled


def start_intake(stack: Stack, proxy: BrokerProxy) -> Service:
    """python -m services.intake over the stack's database and registry, its broker through the
    proxy; neither the confirm timeout nor the drain's grace cuts a held call short."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "SANAD_MONGO_URL": stack.env["SANAD_MONGO_URL"],
        "SANAD_MONGO_DATABASE": stack.env["SANAD_MONGO_DATABASE"],
        "SANAD_AMQP_URL": proxy.url,
        "SANAD_AMQP_PREFIX": stack.prefix,
        "SANAD_REGISTRY_TARGET": stack.intake_app.settings.registry_target,
        "SANAD_GRPC_HOST": "127.0.0.1",
        "SANAD_INTAKE_PORT": str(port),
        "SANAD_INTAKE_METRICS_PORT": str(metrics_port),
        "SANAD_PUBLISH_TIMEOUT_S": str(2 * WITHIN_S),
        "SANAD_SHUTDOWN_GRACE_S": str(2 * WITHIN_S),
        "SANAD_LOG_PLAIN": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.intake"], env=env, stderr=subprocess.PIPE, text=True
    )
    return Service(process, port, metrics_port)


async def _serving(health: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.aio.AioRpcError:
        return False  # not listening yet
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def intake(stack: Stack, proxy: BrokerProxy) -> AsyncIterator[tuple[Service, str, str]]:
    """An active centre with a service, then the intake process SERVING (its first registry
    snapshot has the centre); killed if still running when the test ends."""
    center_id, service_code = await open_centre_with_service(stack)
    service = start_intake(stack, proxy)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await eventually(lambda: _serving(health), within_s=WITHIN_S, every_s=0.2)
        yield service, center_id, service_code
    finally:
        proxy.thaw()
        if service.process.poll() is None:
            service.process.kill()
        await asyncio.to_thread(service.process.wait, 30)


async def test_sigterm_turns_health_not_serving_lets_a_call_in_flight_finish_and_exits_0(
    proxy: BrokerProxy, intake: tuple[Service, str, str]
) -> None:
    service, center_id, service_code = intake
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        # The path works through the proxy before anything is held.
        warm = await stub.SubmitTransaction(
            submit_request(center_id, service_code, "warm"), timeout=WITHIN_S
        )
        assert warm.transaction_id

        proxy.freeze()  # the broker's confirm cannot arrive: the next submission stays in flight
        held = asyncio.ensure_future(
            stub.SubmitTransaction(
                submit_request(center_id, service_code, "held"), timeout=4 * WITHIN_S
            )
        )

        async def call_in_flight() -> bool:
            return await asyncio.to_thread(service.in_flight, "SubmitTransaction") == 1

        await eventually(call_in_flight, within_s=WITHIN_S)
        signalled_at = len(service.lines)
        service.process.send_signal(signal.SIGTERM)

        # Draining: health turned NOT_SERVING while the held call is still unanswered and the
        # process still running.
        async def not_serving() -> bool:
            return service.logged_since(signalled_at, NOT_SERVING_LINE)

        await eventually(not_serving, within_s=WITHIN_S)
        assert not held.done(), "the held call was answered before the drain could hold it"
        assert service.process.poll() is None

        proxy.thaw()
        # A call the stop cut short raises here (CANCELLED, UNAVAILABLE) instead of answering.
        reply = await asyncio.wait_for(held, WITHIN_S)
        assert reply.transaction_id
        assert reply.transaction_id != warm.transaction_id
    assert await asyncio.to_thread(service.process.wait, WITHIN_S) == 0


async def test_sigterm_answers_a_kept_open_streams_items_in_flight_then_ends_it_unavailable(
    proxy: BrokerProxy, intake: tuple[Service, str, str], stack: Stack
) -> None:
    # A SubmitTransactions stream whose caller keeps it open read on through the drain: it took
    # items for the whole grace (2 minutes here) and was then cut, "Cancelling all calls", with
    # the items it had in flight unanswered though the broker may have taken them.
    service, center_id, service_code = intake
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stream = intake_pb2_grpc.IntakeServiceStub(channel).SubmitTransactions(timeout=4 * WITHIN_S)

        async def send(n: int) -> None:
            request = submit_request(center_id, service_code, f"kept-open-{n}")
            await stream.write(intake_pb2.SubmitTransactionsRequest(transaction=request))

        for n in range(3):
            await send(n)
        assert [(await stream.read()).index for _ in range(3)] == [0, 1, 2]

        proxy.freeze()  # the next items' confirms cannot arrive: they stay in flight
        for n in range(3, 5):
            await send(n)

        # Claimed, so taken: their tasks run on to their answers whatever the stream reads next.
        client: AsyncMongoClient[Any] = AsyncMongoClient(stack.env["SANAD_MONGO_URL"])
        claims = client[stack.env["SANAD_MONGO_DATABASE"]][REQUESTS_COLLECTION]
        try:

            async def taken() -> bool:
                return await claims.count_documents({}) == 5

            await eventually(taken, within_s=WITHIN_S)
        finally:
            await client.close()
        signalled_at = len(service.lines)
        service.process.send_signal(signal.SIGTERM)

        async def not_serving() -> bool:
            return service.logged_since(signalled_at, NOT_SERVING_LINE)

        await eventually(not_serving, within_s=WITHIN_S)
        proxy.thaw()

        answers = [answer async for answer in _rest(stream)]
        assert [(a.index, a.error_code) for a in answers] == [(3, ""), (4, "")]
        assert await stream.code() == grpc.StatusCode.UNAVAILABLE
        assert "intake is stopping" in (await stream.details() or "")
    # Ended as the drain began, not at its grace: the process stops well within it.
    assert await asyncio.to_thread(service.process.wait, WITHIN_S) == 0


async def _rest(
    stream: "grpc.aio.StreamStreamCall[intake_pb2.SubmitTransactionsRequest, Any]",
) -> AsyncIterator[Any]:
    """The answers still to come, up to the call's end (its status is read after)."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        while (answer := await stream.read()) is not grpc.aio.EOF:
            yield answer
