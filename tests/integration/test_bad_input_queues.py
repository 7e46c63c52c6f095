"""Random bytes, truncated protobuf, wrong content types and oversized bodies on every work queue
end in that queue's dead-letter queue with a reason, while good traffic keeps flowing.
"""

import os
import signal
import subprocess
import sys

import aio_pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.topology import BATCH, REASON_HEADER, SUBMITTED, Topology
from sanad.devstack.mongo_server import free_port
from sanad.records import SUBMITTED_TYPE
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service

pytestmark = pytest.mark.integration


def _random_blobs() -> list[bytes]:
    """A few random bodies, drawn by hypothesis so they include its edge cases."""
    found: list[bytes] = []

    @settings(max_examples=4, database=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=1, max_size=256))
    def collect(blob: bytes) -> None:
        found.append(blob)

    collect()
    return found


def poison(kind: str) -> list[tuple[str, aio_pika.Message]]:
    """(label, message) pairs that no worker can process, for a message type."""
    valid = events_pb2.BatchSubmission(batch_id="b" * 40, center_id="c" * 40)
    if kind == SUBMITTED_TYPE:
        valid = events_pb2.TransactionSubmitted(transaction_id="t" * 40)  # type: ignore[assignment]
    body = valid.SerializeToString()
    found = [
        (f"random-{i}", aio_pika.Message(blob, type=kind)) for i, blob in enumerate(_random_blobs())
    ]
    found += [
        ("truncated", aio_pika.Message(body[:-5], type=kind)),
        (
            "json",
            aio_pika.Message(b'{"center_id": "x"}', type=kind, content_type="application/json"),
        ),
        ("oversized", aio_pika.Message(os.urandom(2 * 1024 * 1024), type=kind)),
        ("no-type", aio_pika.Message(body)),
    ]
    return found


def start(module: str, stack: Stack, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module], env={**stack.env, **extra})


async def test_poison_on_every_queue_is_dead_lettered_while_good_traffic_flows(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    targets = [
        (topology.transactions_exchange, SUBMITTED, SUBMITTED_TYPE, topology.ingest_queue),
        (topology.batch_exchange, BATCH, SUBMISSION_TYPE, topology.batch_queue),
    ]
    workers = [
        start("workers.ingest", stack, {}),
        start(
            "workers.batch",
            stack,
            {
                "SANAD_REGISTRY_TARGET": stack.intake_app.settings.registry_target,
                "SANAD_BATCH_HEALTH_PORT": str(free_port()),
                "SANAD_BATCH_METRICS_PORT": str(free_port()),
            },
        ),
    ]
    expected: dict[str, int] = {}
    connection = await aio_pika.connect(stack.amqp_url)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:
        async with connection:
            channel = await connection.channel()
            for exchange_name, key, kind, queue in targets:
                exchange = await channel.get_exchange(exchange_name, ensure=False)
                messages = poison(kind)
                for _, message in messages:
                    await exchange.publish(message, routing_key=key)
                expected[queue] = len(messages)
        good = [await _submit(stack, center_id, service, i) for i in range(3)]

        async def stored() -> bool:
            return await db.transactions.count_documents({"_id": {"$in": good}}) == len(good)

        await eventually(stored, within_s=45)
        for queue, count in expected.items():
            reasons = await _dead_letter_reasons(stack, topology.dead_queue(queue), count)
            assert all(reasons), f"a dead letter on {queue} carries no reason: {reasons}"
            assert await stack.queue_depth(queue) == 0
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        await client.close()


async def _submit(stack: Stack, center_id: str, service: str, index: int) -> str:
    reply = await stack.intake.SubmitTransaction(
        intake_pb2.SubmitTransactionRequest(
            request_id=f"good-{index}",
            center_id=center_id,
            service_code=service,
            channel=COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number=f"8800000{index}",
        ),
        timeout=10,
    )
    return str(reply.transaction_id)


async def _dead_letter_reasons(stack: Stack, dead_queue: str, expected: int) -> list[str]:
    reasons: list[str] = []
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(dead_queue)

        async def drained() -> bool:
            message = await queue.get(fail=False)
            if message is not None:
                reasons.append(str((message.headers or {}).get(REASON_HEADER) or ""))
                await message.ack()
            return len(reasons) >= expected

        await eventually(drained, within_s=45, every_s=0.05)
    return reasons
