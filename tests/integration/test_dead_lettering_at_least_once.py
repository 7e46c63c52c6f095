"""Work and retry queues dead-letter at least once: a dead letter whose target queue is missing
stays with its source queue and reaches the target once it is declared again; a broker whose
queues an earlier release declared (at most once) still starts, with a warning.

The broker retries a dead letter it could not route every dead_letter_worker_publisher_confirm_
timeout (3 minutes by default) and at once when a policy of the source queue changes: with
rabbitmqctl at hand a test changes one (`prompt_retry`) instead of waiting the 3 minutes.
"""

import json
import logging
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from sanad.amqp.topology import EARLIER_DELIVERY_LIMITS, SUBMITTED, Topology
from tests.integration.conftest import eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl, set_policy
from tests.integration.workers_support import queue_depth

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Seconds within which a dead letter reaches its target once it can: prompted at once, or at the
# broker's next retry (180 s by default).
PROMPTED_S, UNPROMPTED_S = 15.0, 200.0
DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy/compose/rabbitmq/definitions.json"


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        yield connection


async def prompt_retry(queue: str, policy: dict[str, object] | None = None) -> float:
    """Have the broker retry queue's unrouted dead letters now; the seconds to wait for them.

    It sets and clears a policy of this queue alone that adds only a length limit out of reach
    to `policy`, the definition of the policy the queue has: one policy applies per queue, and
    one without the at-least-once strategy would drop the waiting dead letters.
    """
    if shutil.which("rabbitmqctl") is None:
        return UNPROMPTED_S
    name = f"prompt-{uuid.uuid4().hex}"
    definition = json.dumps({**(policy or {}), "max-length": 1_000_000_000})
    await set_policy(name, f"^{re.escape(queue)}$", definition, priority=100)
    await rabbitmqctl("clear_policy", name)
    return PROMPTED_S


async def expires(amqp_url: str, queue: str) -> None:
    """Until queue holds nothing ready: its one message expired and was dead-lettered (to a
    target that may not exist: the at-least-once strategy keeps it with the queue meanwhile)."""

    async def empty() -> bool:
        return await queue_depth(amqp_url, queue) == 0

    await eventually(empty, within_s=30, every_s=0.1)


async def arrives(amqp_url: str, queue: str, within_s: float) -> None:
    async def there() -> bool:
        return await queue_depth(amqp_url, queue) == 1

    await eventually(there, within_s=within_s, every_s=0.5)


async def test_a_parked_message_whose_work_queue_is_gone_reaches_it_once_it_is_declared_again(
    topology: Topology, connection: AbstractRobustConnection, amqp_url: str
) -> None:
    work = topology.ingest_queue
    retry = topology.retry_queue(work)
    channel = await connection.channel()
    await channel.queue_delete(work)

    parked = aio_pika.Message(b"parked", message_id="m-1", expiration=0.2)
    await channel.default_exchange.publish(parked, routing_key=retry, mandatory=True)
    await expires(amqp_url, retry)  # dead-lettered to nowhere
    await topology.declare(channel)

    await arrives(amqp_url, work, await prompt_retry(retry))
    message = await channel.get_queue(work, ensure=False)
    got = await message.get(no_ack=True)
    assert (got.body, got.message_id) == (b"parked", "m-1")


async def test_a_message_over_the_delivery_limit_while_the_dead_queue_is_gone_reaches_it_later(
    topology: Topology, connection: AbstractRobustConnection, amqp_url: str
) -> None:
    work = topology.ingest_queue
    channel = await connection.channel()
    await channel.queue_delete(topology.dead_queue(work))
    exchange = await channel.get_exchange(topology.transactions_exchange)
    await exchange.publish(aio_pika.Message(b"poison", message_id="p-1"), routing_key=SUBMITTED)

    queue = await channel.get_queue(work, ensure=False)
    for _ in range(topology.delivery_limit + 1):
        delivered = await queue.get(fail=False, timeout=5)
        assert delivered is not None
        await delivered.reject(requeue=True)
    assert await queue.get(fail=False, timeout=5) is None  # over the limit: dead-lettered
    await topology.declare(channel)

    await arrives(amqp_url, topology.dead_queue(work), await prompt_retry(work))


def earlier_release_arguments(topology: Topology, work: str) -> dict[str, dict[str, Any]]:
    """The work and retry queue arguments the release before at-least-once declared (with the
    delivery limit of its time)."""
    return {
        work: {
            "x-queue-type": "quorum",
            "x-delivery-limit": EARLIER_DELIVERY_LIMITS[0],
            "x-dead-letter-exchange": topology.dead_exchange,
            "x-dead-letter-routing-key": work,
        },
        topology.retry_queue(work): {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": work,
        },
    }


async def declare_as_the_earlier_release(channel: AbstractChannel, topology: Topology) -> None:
    for work in topology.work_queues():
        for name, arguments in earlier_release_arguments(topology, work).items():
            await channel.declare_queue(name, durable=True, arguments=arguments)


async def test_declare_over_queues_of_the_earlier_release_warns_once_each_and_they_still_work(
    amqp_prefix: str,
    connection: AbstractRobustConnection,
    amqp_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topology = Topology(amqp_prefix)
    await declare_as_the_earlier_release(await connection.channel(), topology)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)

    with caplog.at_level(logging.WARNING, logger="sanad.amqp.topology"):
        await topology.declare(channel)
        await topology.declare(channel)  # as at a reconnect: no second warning

    warnings = [r.getMessage() for r in caplog.records if r.name == "sanad.amqp.topology"]
    # "queue <name> was declared before at-least-once dead-lettering: ..."
    warned = sorted(message.split()[1] for message in warnings)
    assert warned == sorted(
        name
        for work in topology.work_queues()
        for name in earlier_release_arguments(topology, work)
    )
    assert all("policy" in message and "delete" in message for message in warnings)
    # A work queue of that release also keeps its delivery limit, and is told so.
    for message in warnings:
        is_work_queue = message.split()[1] in topology.work_queues()
        assert ("keeps its delivery limit of 5" in message) == is_work_queue
    assert not channel.is_closed
    exchange = await channel.get_exchange(topology.transactions_exchange)
    await exchange.publish(aio_pika.Message(b"still routed"), routing_key=SUBMITTED)
    assert await queue_depth(amqp_url, topology.ingest_queue) == 1


async def test_declare_still_fails_on_a_queue_of_another_type_under_the_same_name(
    amqp_prefix: str, connection: AbstractRobustConnection
) -> None:
    topology = Topology(amqp_prefix)
    await (await connection.channel()).declare_queue(topology.ingest_queue, durable=True)

    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="x-"):
        await topology.declare(await connection.channel())


async def test_declare_keeps_a_work_queue_with_the_earlier_delivery_limit_and_says_so(
    amqp_prefix: str,
    connection: AbstractRobustConnection,
    amqp_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topology = Topology(amqp_prefix)
    channel = await connection.channel()
    earlier = {**topology.work_queue_arguments(topology.ingest_queue)}
    earlier["x-delivery-limit"] = EARLIER_DELIVERY_LIMITS[0]
    await channel.declare_queue(topology.ingest_queue, durable=True, arguments=earlier)

    with caplog.at_level(logging.WARNING, logger="sanad.amqp.topology"):
        await topology.declare(await connection.channel())

    [warning] = [r.getMessage() for r in caplog.records if r.name == "sanad.amqp.topology"]
    assert warning.startswith(f"queue {topology.ingest_queue} keeps its delivery limit of 5")
    assert "at-least-once" not in warning  # it has that already
    exchange = await channel.get_exchange(topology.transactions_exchange)
    await exchange.publish(aio_pika.Message(b"still routed"), routing_key=SUBMITTED)
    assert await queue_depth(amqp_url, topology.ingest_queue) == 1


async def test_declare_still_fails_over_a_queue_with_a_delivery_limit_of_no_release(
    amqp_prefix: str, connection: AbstractRobustConnection
) -> None:
    topology = Topology(amqp_prefix)
    arguments = {**topology.work_queue_arguments(topology.ingest_queue), "x-delivery-limit": 7}
    await (await connection.channel()).declare_queue(
        topology.ingest_queue, durable=True, arguments=arguments
    )

    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        await topology.declare(await connection.channel())


@needs_rabbitmqctl
async def test_the_deploy_policy_makes_a_retry_queue_of_the_earlier_release_keep_dead_letters(
    amqp_prefix: str, connection: AbstractRobustConnection, amqp_url: str
) -> None:
    topology = Topology(amqp_prefix)
    channel = await connection.channel()
    await declare_as_the_earlier_release(channel, topology)
    await topology.declare(channel)
    [deployed] = [
        p
        for p in json.loads(DEFINITIONS.read_text())["policies"]
        if p["name"] == "sanad-retry-queues"
    ]
    # The deploy policy as it is, its pattern moved from prefix sanad to this test's.
    pattern = deployed["pattern"].replace(r"^sanad\.", rf"^{re.escape(amqp_prefix)}\.")
    assert pattern != deployed["pattern"]
    name = f"deploy-{amqp_prefix}"
    await set_policy(name, pattern, json.dumps(deployed["definition"]))
    try:
        work = topology.ingest_queue
        retry = topology.retry_queue(work)
        await channel.queue_delete(work)
        parked = aio_pika.Message(b"parked", expiration=0.2)
        await channel.default_exchange.publish(parked, routing_key=retry, mandatory=True)
        await expires(amqp_url, retry)  # dead-lettered to nowhere
        await topology.declare(channel)

        await arrives(amqp_url, work, await prompt_retry(retry, deployed["definition"]))
    finally:
        await rabbitmqctl("clear_policy", name)
