"""A batch submitter logs in to RabbitMQ as its own user: the broker validates `user_id`, and the
batch worker (auth required) takes batches for that user's centre only."""

import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import aio_pika
import pytest

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.topology import BATCH, CONTENT_TYPE, Topology
from sanad.cli.batch_send import send
from sanad.security.batch_users import batch_user
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import Stack, open_centre_with_service
from tests.integration.workers_support import dead_letters, delete_retry_queues, start_batch_worker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to create a broker user"
    ),
]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def submission(batch_id: str, center_id: str, service: str) -> events_pb2.BatchSubmission:
    item = intake_pb2.SubmitTransactionRequest(
        request_id="r-1", service_code=service, fee_baisa=5000, beneficiary_civil_number="99887766"
    )
    return events_pb2.BatchSubmission(batch_id=batch_id, center_id=center_id, items=[item])


Submitter = Callable[[str], str]


@pytest.fixture
def submitter(stack: Stack) -> Iterator[Submitter]:
    """Creates broker users `batch-<centre>` with the permissions README "Batch submitters"
    gives, and returns each one's AMQP URL; deletes them afterwards."""
    parts = urlsplit(stack.amqp_url)
    vhost = parts.path.lstrip("/") or "/"
    created: list[str] = []

    def create(center_id: str) -> str:
        user, password = batch_user(center_id), uuid.uuid4().hex
        rabbitmqctl("add_user", user, password)
        created.append(user)
        rabbitmqctl(
            "set_permissions", "-p", vhost, user, r"^amq\.gen-.*",
            rf"^({Topology(stack.prefix).batch_exchange}|amq\.gen-.*)$", r"^amq\.gen-.*",
        )  # fmt: skip
        return f"amqp://{user}:{password}@{parts.hostname}:{parts.port or 5672}{parts.path or '/'}"

    try:
        yield create
    finally:
        for user in created:
            rabbitmqctl("delete_user", user)


async def test_a_batch_user_is_answered_for_its_centre_and_refused_for_another(
    stack: Stack, submitter: Submitter
) -> None:
    own_center, service = await open_centre_with_service(stack)
    other_center, _ = await open_centre_with_service(stack)
    url = submitter(own_center)
    worker = start_batch_worker(stack, SANAD_AUTH_MODE="required")
    try:
        own, foreign = await send(
            url,
            stack.prefix,
            [submission(f"own-{uuid.uuid4().hex}", own_center, service),
             submission(f"foreign-{uuid.uuid4().hex}", other_center, service)],
            wait_s=60,
        )  # fmt: skip
        assert [a.index for a in own.accepted] == [0]
        assert not own.refused_reason
        assert not foreign.accepted
        assert foreign.refused_reason == f"not allowed to submit for centre {other_center!r}"
        reasons = await dead_letters(stack, Topology(stack.prefix).batch_queue, expected=1)
        assert reasons == ["not-allowed"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)


async def test_a_batch_user_cannot_store_items_for_another_centre_or_take_its_batch_ids(
    stack: Stack, submitter: Submitter
) -> None:
    own_center, service = await open_centre_with_service(stack)
    other_center, other_service = await open_centre_with_service(stack)
    own_url, other_url = submitter(own_center), submitter(other_center)
    batch = submission(f"mixed-{uuid.uuid4().hex}", own_center, service)
    # An item of the batch names the other centre: the batch's centre alone is not enough.
    batch.items.append(intake_pb2.SubmitTransactionRequest(
        request_id="r-2", center_id=other_center, service_code=service, fee_baisa=5000,
        beneficiary_civil_number="99887755",
    ))  # fmt: skip
    worker = start_batch_worker(stack, SANAD_AUTH_MODE="required")
    try:
        (answer,) = await send(own_url, stack.prefix, [batch], wait_s=60)
        assert [a.index for a in answer.accepted] == [0]
        assert [r.index for r in answer.rejected] == [1]
        assert answer.rejected[0].violations[0].field == "center_id"
        # The other centre's submitter sends a batch under the same id: its ids are its own,
        # so it is answered for its own items, not given the first answer, and stores apart.
        reused = submission(batch.batch_id, other_center, other_service)
        (theirs,) = await send(other_url, stack.prefix, [reused], wait_s=60)
        assert not theirs.refused_reason
        assert [a.index for a in theirs.accepted] == [0]
        assert theirs.accepted[0].transaction_id != answer.accepted[0].transaction_id
        # The first submitter sending its batch again still gets its own answer.
        (again,) = await send(own_url, stack.prefix, [batch], wait_s=60)
        assert again == answer
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)


async def test_the_broker_refuses_a_user_id_that_is_not_the_connections_user(
    stack: Stack, submitter: Submitter
) -> None:
    url = submitter(f"c-{uuid.uuid4().hex[:12]}")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(Topology(stack.prefix).batch_exchange)
        forged = aio_pika.Message(
            submission("forged", "c-other", "S").SerializeToString(),
            content_type=CONTENT_TYPE,
            type=SUBMISSION_TYPE,
            user_id=batch_user("c-other"),
        )
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="user_id"):
            await exchange.publish(forged, routing_key=BATCH)
    assert await stack.queue_depth(Topology(stack.prefix).batch_queue) == 0
