"""The database refuses a worker's writes for a reason that is not about the messages (here:
Unauthorized, as after a role or password rotation): the ingest and batch workers back off and
retry, dead-letter nothing, say NOT_SERVING while every try fails (the database answering pings
all along), and store everything once the database takes writes again."""

import asyncio
import contextlib
import signal
import urllib.request
import uuid

import pytest
from grpc_health.v1 import health_pb2
from pymongo import AsyncMongoClient

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.cli.batch_send import send
from sanad.devstack import mongo_server
from sanad.records import SUBMITTED_TYPE
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import (
    COUNTER,
    Stack,
    eventually,
    open_centre_with_service,
    worker_env,
)
from tests.integration.workers_support import (
    delete_retry_queues,
    health_becomes,
    ingest_worker,
    publish,
    queue_depth,
    serving_batch_worker,
    submitted,
)

pytestmark = pytest.mark.integration

UNAUTHORIZED = 13
COUNT = 5
# How long every try may fail before the worker's health says NOT_SERVING (its `handling`
# check): short here, the refusals last longer. The database answers its pings throughout.
FAILING_AFTER_S = "1"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# How long each health change may take: the check runs every second.
HEALTH_WITHIN_S = 30


@pytest.fixture
def mongo_url(failpoint_database: str) -> str:
    """The stack's services and workers use this test's failpoint-enabled server."""
    return failpoint_database


async def _refuse_inserts(client: AsyncMongoClient, app_name: str) -> None:
    """Every insert of the connections named app_name fails as Unauthorized (no error label,
    as mongod answers a statement it refuses for lack of a role); other clients go on."""
    await client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode="alwaysOn",
        data={"failCommands": ["insert"], "errorCode": UNAUTHORIZED, "appName": app_name},
    )


async def _take_inserts(client: AsyncMongoClient) -> None:
    await client.admin.command("configureFailPoint", "failCommand", mode="off")


def _retried(metrics_port: str) -> float:
    """The worker's count of micro-batches retried after a transient failure."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return 0.0  # not serving metrics yet
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sanad_worker_retries_total{")
    )


async def test_writes_refused_as_unauthorized_are_retried_and_never_dead_lettered(
    failpoint_database: str, topology: Topology, amqp_url: str, database_name: str
) -> None:
    env = worker_env(
        failpoint_database,
        database_name,
        amqp_url,
        topology.prefix,
        SANAD_MONGO_TIMEOUT_MS="2000",
        SANAD_INGEST_HEALTH_PORT=str(mongo_server.free_port()),
        SANAD_INGEST_METRICS_PORT=str(mongo_server.free_port()),
        SANAD_INGEST_FAILING_AFTER_S=FAILING_AFTER_S,
    )
    metrics_port = env["SANAD_INGEST_METRICS_PORT"]
    health_port = env["SANAD_INGEST_HEALTH_PORT"]
    dead_queue = topology.dead_queue(topology.ingest_queue)
    client: AsyncMongoClient = AsyncMongoClient(failpoint_database, appname="refusals-test")
    db = client[database_name]
    await _refuse_inserts(client, "sanad-ingest")
    worker = ingest_worker(env)
    try:
        await health_becomes(
            health_port, SERVING, HEALTH_WITHIN_S
        )  # refusing inserts, with nothing to insert
        center = f"C-{uuid.uuid4().hex[:8]}"
        messages = [submitted(f"U{n:07d}", center, "ROP-VISA") for n in range(COUNT)]
        events = [(SUBMITTED, m.SerializeToString(), SUBMITTED_TYPE) for m in messages]
        await publish(amqp_url, topology.transactions_exchange, events)

        async def retried_or_dead_lettered() -> bool:
            return _retried(metrics_port) >= 3 or await queue_depth(amqp_url, dead_queue) > 0

        await eventually(retried_or_dead_lettered, within_s=30, every_s=0.1)
        assert await queue_depth(amqp_url, dead_queue) == 0, "good messages were dead-lettered"
        assert await db.transactions.count_documents({}) == 0, "the failpoint must refuse"
        await health_becomes(health_port, NOT_SERVING, HEALTH_WITHIN_S)

        await _take_inserts(client)

        async def all_stored() -> bool:
            return (
                await db.transactions.count_documents({}) == COUNT
                and await queue_depth(amqp_url, topology.ingest_queue) == 0
            )

        await eventually(all_stored, within_s=30, every_s=0.1)
        assert await queue_depth(amqp_url, dead_queue) == 0
        assert worker.poll() is None, "the worker must ride out the refusals, not exit"
        await health_becomes(health_port, SERVING, HEALTH_WITHIN_S)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        with contextlib.suppress(Exception):
            await _take_inserts(client)
        await client.close()


async def test_a_batch_whose_chunk_is_refused_as_unauthorized_is_retried_and_answered(
    stack: Stack, failpoint_database: str, amqp_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    batch = events_pb2.BatchSubmission(
        batch_id=f"refused-{uuid.uuid4().hex}",
        center_id=center_id,
        items=[
            intake_pb2.SubmitTransactionRequest(
                request_id=f"r-{n}",
                service_code=service,
                channel=COUNTER,
                fee_baisa=5000,
                beneficiary_civil_number=f"{60_000_000 + n}",
            )
            for n in range(3)
        ],
    )
    dead_queue = Topology(stack.prefix).dead_queue(Topology(stack.prefix).batch_queue)
    metrics_port = str(mongo_server.free_port())
    health_port = str(mongo_server.free_port())
    client: AsyncMongoClient = AsyncMongoClient(failpoint_database, appname="refusals-test")
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    await _refuse_inserts(client, "sanad-batch")
    # SERVING before the batch goes out: refusing inserts, with nothing to insert.
    worker = await serving_batch_worker(
        stack,
        SANAD_BATCH_METRICS_PORT=metrics_port,
        SANAD_BATCH_HEALTH_PORT=health_port,
        SANAD_BATCH_FAILING_AFTER_S=FAILING_AFTER_S,
    )
    sending = asyncio.create_task(send(stack.amqp_url, stack.prefix, [batch], wait_s=60))
    try:

        async def retried_or_dead_lettered() -> bool:
            return _retried(metrics_port) >= 3 or await queue_depth(amqp_url, dead_queue) > 0

        await eventually(retried_or_dead_lettered, within_s=30, every_s=0.1)
        assert await queue_depth(amqp_url, dead_queue) == 0, "a good batch was dead-lettered"
        assert not sending.done(), "answered while its items could not be stored"
        await health_becomes(health_port, NOT_SERVING, HEALTH_WITHIN_S)

        await _take_inserts(client)
        [answer] = await sending
        assert [a.index for a in answer.accepted] == [0, 1, 2]
        assert await db.transactions.count_documents({"center_id": center_id}) == 3
        assert await queue_depth(amqp_url, dead_queue) == 0
        await health_becomes(health_port, SERVING, HEALTH_WITHIN_S)
    finally:
        sending.cancel()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        with contextlib.suppress(Exception):
            await _take_inserts(client)
        await client.close()
        await delete_retry_queues(stack)
