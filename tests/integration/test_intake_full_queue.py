"""A work queue at its length limit (the deploy policies bound the work queues, overflow
reject-publish): intake answers UNAVAILABLE saying so, and nothing is lost. A retry with the same
request id, once workers have made room, is the same transaction, stored once."""

import asyncio
import json
import re
import signal

import grpc
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from sanad.v1 import intake_pb2
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl, set_policy

pytestmark = [pytest.mark.integration, needs_rabbitmqctl]


def refused(exchange: str) -> float:
    labels = {"exchange": exchange, "outcome": "refused"}
    return REGISTRY.get_sample_value("sanad_amqp_published_total", labels) or 0.0


async def submit_until_refused(
    stack: Stack, center_id: str, service: str, accepted: dict[str, str]
) -> tuple[intake_pb2.SubmitTransactionRequest, grpc.aio.AioRpcError]:
    """Submit one by one until intake refuses one: it and its error; the others' transaction
    ids go to `accepted`."""
    for n in range(100):
        request = submit_request(center_id, service, f"r-{n}")
        try:
            reply = await stack.intake.SubmitTransaction(request, timeout=15)
        except grpc.aio.AioRpcError as error:
            return request, error
        accepted[request.request_id] = reply.transaction_id
        await asyncio.sleep(0.1)  # the policy may take a moment to reach the queue
    pytest.fail("the ingest queue at its limit took every submission")


async def test_a_full_ingest_queue_refuses_with_its_reason_and_a_retry_loses_nothing(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    exchange = f"{stack.prefix}.transactions"
    policy = f"full-{stack.prefix}"
    before = refused(exchange)
    # No worker consumes yet, and the limit is one message: the broker takes a message while
    # the queue holds no more than its limit, so the first two enter, then it refuses.
    pattern = f"^{re.escape(stack.prefix)}\\.ingest$"
    await set_policy(policy, pattern, json.dumps({"max-length": 1}), priority=100)
    accepted: dict[str, str] = {}
    worker = None
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    transactions = client[stack.env["SANAD_MONGO_DATABASE"]].transactions
    try:
        refused_request, error = await submit_until_refused(stack, center_id, service, accepted)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "the message broker refused the message: its queue is full" in (
            error.details() or ""
        )
        assert refused(exchange) == before + 1
        assert len(accepted) <= 10

        # The queue takes messages again once the worker has taken some, as when workers catch
        # up in production; the refused submission, sent again, is a transaction like the others.
        worker = stack.start_worker()

        async def retried() -> bool:
            try:
                reply = await stack.intake.SubmitTransaction(refused_request, timeout=15)
            except grpc.aio.AioRpcError as again:
                if again.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False
            accepted[refused_request.request_id] = reply.transaction_id
            return True

        await eventually(retried, within_s=30, every_s=0.5)

        async def stored() -> bool:
            return await transactions.count_documents({"center_id": center_id}) >= len(accepted)

        await eventually(stored, within_s=30)
        found = await transactions.find({"center_id": center_id}).to_list()
        assert {doc["request_id"]: doc["_id"] for doc in found} == accepted
    finally:
        await rabbitmqctl("clear_policy", policy)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        await client.close()
