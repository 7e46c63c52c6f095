"""Helpers for the worker tests: publishing events directly, reading the DLQ, starting workers."""

import asyncio
import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import grpc
from aio_pika.abc import AbstractIncomingMessage
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.amqp.topology import REASON_HEADER, Topology
from sanad.devstack.mongo_server import free_port
from sanad.rpc.timestamps import to_timestamp
from sanad.settings import amqp_user
from sanad.v1 import common_pb2, events_pb2
from tests.integration.conftest import Stack, eventually

# The type headers intake puts on the status changes and ratings it publishes: the message's full
# protobuf name (services/intake publishes `event.DESCRIPTOR.full_name`). Spelled from the proto
# here, not imported from workers.ingest.handlers: these tests publish as intake does, so a worker
# whose own constants drifted from what intake sends must fail them. Submissions use
# sanad.records.SUBMITTED_TYPE and batches sanad.amqp.batches.SUBMISSION_TYPE, which the publisher
# and the worker both import: that shared constant is the contract.
STATUS_CHANGED_TYPE = events_pb2.TransactionStatusChanged.DESCRIPTOR.full_name
RATED_TYPE = events_pb2.TransactionRated.DESCRIPTOR.full_name


def submitted(
    transaction_id: str, center_id: str, service: str, at: datetime | None = None
) -> events_pb2.TransactionSubmitted:
    """A TransactionSubmitted as intake would publish it, submitted `at` (default now)."""
    return events_pb2.TransactionSubmitted(
        transaction_id=transaction_id,
        center_id=center_id,
        governorate_code="DA",
        wilayat_code="DA-NIZ",
        service_code=service,
        agency_code="ROP",
        sla_hours=48,
        channel=common_pb2.CHANNEL_COUNTER,
        fee_baisa=5000,
        beneficiary_hash="ab" * 32,
        beneficiary_masked="*****678",
        submit_time=to_timestamp(at or datetime.now(UTC)),
    )


async def publish(
    url: str, exchange_name: str, events: list[tuple[str, bytes, str]], confirm: bool = True
) -> None:
    """Publish (routing key, body, type) triples persistently, with confirms, as intake does:
    with the connection's user as user_id (the ingest worker stores only its publishers')."""
    user = amqp_user(url)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=confirm)
        exchange = await channel.get_exchange(exchange_name)
        for start in range(0, len(events), 1000):
            # Confirms awaited a thousand at a time: fast, and still all confirmed.
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            type=kind,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            user_id=user,
                        ),
                        routing_key=key,
                    )
                    for key, body, kind in events[start : start + 1000]
                )
            )


async def dead_letters(stack: Stack, queue: str, expected: int, within_s: float = 20) -> list[str]:
    """Reasons of the first `expected` dead letters of a work queue."""
    letters = await dead_letter_messages(stack, queue, expected, within_s)
    return [str((message.headers or {}).get(REASON_HEADER)) for message in letters]


async def dead_letter_messages(
    stack: Stack, queue: str, expected: int, within_s: float = 20
) -> list[AbstractIncomingMessage]:
    """The first `expected` dead letters of a work queue, taken off it."""
    letters: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(Topology(stack.prefix).dead_queue(queue))

        async def drained() -> bool:
            message = await dead.get(fail=False)
            if message is not None:
                letters.append(message)
                await message.ack()
            return len(letters) >= expected

        await eventually(drained, within_s=within_s, every_s=0.02)
    return letters


@contextlib.asynccontextmanager
async def dead_letter_tap(stack: Stack, queue: str) -> AsyncIterator[list[AbstractIncomingMessage]]:
    """Copies of every dead letter published for a work queue, as they come: a queue of this
    test's own, bound to P.dead beside the work queue's dead-letter queue and consumed at once
    (a copy delivered never expires), to read without taking the dead-letter queue's own.
    Declares the topology."""
    topology = Topology(stack.prefix)
    copies: list[AbstractIncomingMessage] = []

    async def keep(message: AbstractIncomingMessage) -> None:
        copies.append(message)

    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        await topology.declare(channel)  # idempotent, as the workers do
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(topology.dead_exchange, queue)
        await tap.consume(keep, no_ack=True)
        yield copies


def start_batch_worker(stack: Stack, **extra: str) -> subprocess.Popen[bytes]:
    """python -m workers.batch against this stack's registry."""
    env = {
        **stack.env,
        "SANAD_REGISTRY_TARGET": stack.intake_app.settings.registry_target,
        "SANAD_BATCH_HEALTH_PORT": str(free_port()),
        "SANAD_BATCH_METRICS_PORT": str(free_port()),
        **extra,
    }
    return subprocess.Popen([sys.executable, "-m", "workers.batch"], env=env)


async def serving_batch_worker(stack: Stack, **extra: str) -> subprocess.Popen[bytes]:
    """start_batch_worker, returned once its health (on SANAD_BATCH_HEALTH_PORT if given) says
    SERVING: it takes SIGTERM as a drain from then on (before, Python's default handler kills
    it), and it is consuming."""
    port = extra.pop("SANAD_BATCH_HEALTH_PORT", "") or str(free_port())
    worker = start_batch_worker(stack, SANAD_BATCH_HEALTH_PORT=port, **extra)
    try:
        await health_becomes(port, health_pb2.HealthCheckResponse.SERVING, within_s=60)
    except BaseException:
        worker.kill()
        worker.wait(timeout=10)
        raise
    return worker


def start_ingest_worker(stack: Stack, **extra: str) -> subprocess.Popen[bytes]:
    """python -m workers.ingest with extra settings."""
    return ingest_worker({**stack.env, **extra})


def ingest_worker(env: Mapping[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """python -m workers.ingest with this environment; its output appended to log when given."""
    if log is None:
        return subprocess.Popen([sys.executable, "-m", "workers.ingest"], env=env)
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.ingest"], env=env, stdout=output, stderr=output
        )


async def delete_retry_queues(stack: Stack) -> None:
    """The conftest tidies work and dead queues; the retry queues are ours."""
    await delete_prefix_retry_queues(stack.amqp_url, stack.prefix)


async def delete_prefix_retry_queues(amqp_url: str, prefix: str) -> None:
    """The retry queues of the topology under prefix."""
    topology = Topology(prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for queue in topology.work_queues():
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(topology.retry_queue(queue))


async def has_consumer(amqp_url: str, queue: str) -> bool:
    """Whether a queue has a consumer, as the broker counts them; False when it does not exist."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return bool(declared.declaration_result.consumer_count)


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in a queue, as the broker counts them."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def end_abandoned_transactions(db: Any) -> None:
    """End the transactions a SIGKILLed worker left open, as an operator would with
    `killAllSessions`.

    The server would end them itself at their lifetime limit (MongoDB's
    transactionLifetimeLimitSeconds, 60 s by default; SecantusDB's the same). Until then they
    hold their documents, so the next worker's writes conflict and are retried, and the test
    waits out the minute. Either way the transaction is aborted, never committed: what the
    test proves (nothing lost, nothing doubled) does not depend on who ends it, only when.
    """
    await db.client.admin.command("killAllSessions", [])


def counted(metrics_port: str, metric: str) -> float:
    """The sum of a worker's counter over its labels, read from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{metric}{{")
    )


async def health_status(port: str) -> int:
    """A worker's overall health status; UNKNOWN while it does not answer."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError:
            return int(health_pb2.HealthCheckResponse.UNKNOWN)
        return int(reply.status)


async def health_becomes(port: str, status: int, within_s: float) -> None:
    """Until a worker's overall health status is `status`; fail after within_s."""

    async def reached() -> bool:
        return await health_status(port) == status

    await eventually(reached, within_s=within_s)


def deliveries(metrics_port: str) -> float:
    """Deliveries a worker took off its queue, redeliveries included."""
    return counted(metrics_port, "sanad_amqp_consumed_total")
