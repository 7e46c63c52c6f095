"""Broker trouble for real: intake's broker connection breaks in the middle of a stream.

Two ways: a TCP proxy between intake and RabbitMQ that cuts every connection and
refuses new ones for a while (a broker that is away), and `rabbitmqctl
close_connection` on intake's own connection (the broker drops it; intake
reconnects at once). Either way: refused calls get UNAVAILABLE fast, the service
recovers by itself, and every submission answered OK is stored exactly once.
"""

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.v1 import intake_pb2
from tests.conftest import AMQP_URL
from tests.integration.broker_support import (  # noqa: F401 (fixtures, registered by importing)
    BrokerProxy,
    amqp_url_through_proxy,  # this module's amqp_url goes through the proxy
    proxy_fixture,
)
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl

pytestmark = pytest.mark.integration

# Single calls' deadline: far beyond intake's own limits, so a call that waited for the caller's
# deadline instead of intake's confirm limit would stand out.
SINGLE_DEADLINE_S = 120.0


async def drop_connection(connection_name: str) -> None:
    """Have the broker close the one connection with that name (no other test's)."""
    listing = await rabbitmqctl("list_connections", "pid", "client_properties", "-q")
    pids = [line.split("\t")[0] for line in listing.splitlines() if connection_name in line]
    assert len(pids) == 1, listing
    await rabbitmqctl("close_connection", pids[0], "test: broker connection dropped")


class Run:
    """A stream and single calls submitting while the connection breaks; what each was told."""

    def __init__(self, stack: Stack, center_id: str, service: str) -> None:
        self.stack, self.center_id, self.service = stack, center_id, service
        self.broken = asyncio.Event()
        self.done = asyncio.Event()
        self.health: list[bool] = []
        self.singles: list[tuple[str, grpc.StatusCode, float, str]] = []

    async def items(self) -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        """Items until 100 were sent after the break healed (at most 5000)."""
        after = 0
        for n in range(5000):
            yield intake_pb2.SubmitTransactionsRequest(
                transaction=submit_request(self.center_id, self.service, f"b-{n}")
            )
            if self.broken.is_set() and self.stack.intake_app.publisher.is_healthy():
                after += 1
                if after == 100:
                    return
            await asyncio.sleep(0.004)

    async def watch_health(self) -> None:
        server = self.stack.intake_app.server
        assert server is not None
        while not self.done.is_set():
            self.health.append(await server.health.check_once())
            await asyncio.sleep(0.05)

    async def single_calls(self) -> None:
        """Single submissions alongside the stream, each under a long deadline."""
        k = 0
        while not self.done.is_set():
            request_id, started, transaction_id = f"u-{k}", time.monotonic(), ""
            try:
                reply = await self.stack.intake.SubmitTransaction(
                    submit_request(self.center_id, self.service, request_id),
                    timeout=SINGLE_DEADLINE_S,
                )
                code, transaction_id = grpc.StatusCode.OK, reply.transaction_id
            except grpc.aio.AioRpcError as error:
                code = error.code()
            self.singles.append((request_id, code, time.monotonic() - started, transaction_id))
            k += 1
            await asyncio.sleep(0.02)

    async def submit_while(
        self, breaking: Callable[[], Awaitable[None]]
    ) -> list[intake_pb2.SubmitTransactionsResponse]:
        async def break_it() -> None:
            await asyncio.sleep(0.3)
            await breaking()
            self.broken.set()

        background = [
            asyncio.create_task(task()) for task in (break_it, self.watch_health, self.single_calls)
        ]
        try:
            return [a async for a in self.stack.intake.SubmitTransactions(self.items(), timeout=60)]
        finally:
            self.done.set()
            await asyncio.gather(*background)


async def check_every_ok_stored_once(
    stack: Stack, mongo_url: str, run: Run, answers: list[intake_pb2.SubmitTransactionsResponse]
) -> None:
    """Retry whatever was refused under its request id, then count what the worker stored."""
    codes = {a.error_code for a in answers} | {s[1].name for s in run.singles}
    assert codes <= {"", "OK", "UNAVAILABLE"}, codes
    assert [a.index for a in answers] == list(range(len(answers)))
    assert all(a.error_code == "" for a in answers[-100:])  # recovered by itself
    # Refused fast, never a hang: a hang into the caller's deadline would end DEADLINE_EXCEEDED
    # (refused above) or, cut short by intake's margin, UNAVAILABLE after SINGLE_DEADLINE_S. The
    # bound is the behaviour: intake waits at most twice its publish timeout for a confirm (an
    # item may wait for the message ahead of it), and 10 times that is a generous bound.
    confirm_limit_s = 2 * stack.intake_app.settings.publish_timeout_s
    slowest = max(s[2] for s in run.singles)
    assert slowest < 10 * confirm_limit_s < SINGLE_DEADLINE_S, slowest
    ok = {a.request_id: a.transaction_id for a in answers if not a.error_code}
    ok |= {rid: tid for rid, code, _, tid in run.singles if code is grpc.StatusCode.OK}
    refused = [a.request_id for a in answers if a.error_code]
    refused += [rid for rid, code, _, _ in run.singles if code is not grpc.StatusCode.OK]
    for request_id in refused:
        reply = await stack.intake.SubmitTransaction(
            submit_request(run.center_id, run.service, request_id), timeout=10
        )
        ok[request_id] = reply.transaction_id
    stack.env["SANAD_AMQP_URL"] = AMQP_URL  # the worker is not the subject here
    worker = stack.start_worker()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:

        async def all_stored() -> bool:
            return await db.transactions.count_documents({}) >= len(ok)

        await eventually(all_stored, within_s=40)
        await eventually(lambda: _drained(stack), within_s=20)
        stored = await db.transactions.find({}, {"request_id": 1}).to_list()
        assert len(stored) == len(ok)
        assert {d["request_id"]: d["_id"] for d in stored} == ok
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)  # the proxy shares this event loop
        await client.close()


async def test_a_broker_away_mid_stream_gives_unavailable_then_recovers_losing_nothing(
    stack: Stack, mongo_url: str, proxy: BrokerProxy
) -> None:
    center_id, service = await open_centre_with_service(stack)
    run = Run(stack, center_id, service)

    async def broker_away_for_two_seconds() -> None:
        await proxy.cut()
        await asyncio.sleep(2.0)
        await proxy.heal()

    answers = await run.submit_while(broker_away_for_two_seconds)
    assert run.health[0] is True
    assert False in run.health  # NOT_SERVING while the broker was away
    assert run.health[-1] is True  # and SERVING again once it reconnected
    assert "UNAVAILABLE" in {a.error_code for a in answers}
    assert grpc.StatusCode.UNAVAILABLE in {s[1] for s in run.singles}
    await check_every_ok_stored_once(stack, mongo_url, run, answers)


@needs_rabbitmqctl
async def test_a_connection_dropped_by_the_broker_mid_stream_loses_nothing(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    run = Run(stack, center_id, service)
    answers = await run.submit_while(lambda: drop_connection(stack.intake_app.publisher.name))
    # The broker is up, so intake reconnects within milliseconds: only the calls
    # whose confirm was lost with the connection may have been refused.
    await check_every_ok_stored_once(stack, mongo_url, run, answers)


async def _drained(stack: Stack) -> bool:
    return await stack.queue_depth(f"{stack.prefix}.ingest") == 0
