"""The premise of KEDA's broker user (deploy/k8s/components/keda): a user holding no permission
in the vhost still learns a queue's depth from a passive declare, and can neither take a message
(batches carry clear civil numbers) nor publish one."""

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from sanad.amqp.topology import Topology
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl

pytestmark = [pytest.mark.integration, needs_rabbitmqctl]


@pytest.fixture
async def depth_reader(amqp_url: str) -> AsyncIterator[str]:
    """The URL of a user of this broker's default vhost with configure, write and read '^$'."""
    user, password = f"depth-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await rabbitmqctl("add_user", user, password)
    try:
        await rabbitmqctl("set_permissions", "-p", "/", user, "^$", "^$", "^$")
        yield amqp_url.replace("guest:guest@", f"{user}:{password}@")
    finally:
        await rabbitmqctl("delete_user", user)


async def test_a_user_without_permissions_reads_a_queues_depth_and_nothing_else(
    amqp_url: str, topology: Topology, depth_reader: str
) -> None:
    assert "guest:guest@" in amqp_url
    queue = topology.batch_queue
    async with await aio_pika.connect(amqp_url) as owner:
        channel = await owner.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"batch"), routing_key=queue)

    async with await aio_pika.connect(depth_reader) as reader:
        declared = await (await reader.channel()).declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count == 1
        with pytest.raises(ChannelAccessRefused):
            await declared.get(no_ack=True)
        channel = await reader.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused):
            await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue)
