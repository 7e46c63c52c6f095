"""The confirmed publisher against the real broker: a confirmed message is persistent and
labelled; a message no queue takes (mandatory) is returned and never reported as sent."""

import asyncio

import aio_pika
import pytest

from sanad.amqp.publisher import ConfirmedPublisher
from sanad.amqp.topology import SUBMITTED, Topology
from sanad.errors import Unavailable

pytestmark = pytest.mark.integration


async def test_a_confirmed_message_reaches_the_quorum_queue_persistent_and_labelled(
    amqp_url: str, amqp_prefix: str
) -> None:
    topology = Topology(amqp_prefix)
    publisher = ConfirmedPublisher(amqp_url, topology, 5.0)
    await asyncio.wait_for(publisher.connect(), 20)
    try:
        await publisher.publish(
            topology.transactions_exchange,
            SUBMITTED,
            b"event",
            message_type="sanad.v1.TransactionSubmitted",
            message_id="T-1",
        )
    finally:
        await publisher.close()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.ingest_queue)
        message = await queue.get(timeout=5)
        await message.ack()
    assert message.body == b"event"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (message.message_id, message.type) == ("T-1", "sanad.v1.TransactionSubmitted")


async def test_a_message_no_queue_takes_is_unavailable_not_ok(
    amqp_url: str, amqp_prefix: str
) -> None:
    topology = Topology(amqp_prefix)
    publisher = ConfirmedPublisher(amqp_url, topology, 5.0)
    await asyncio.wait_for(publisher.connect(), 20)
    try:
        with pytest.raises(Unavailable):
            await publisher.publish(
                topology.transactions_exchange,
                "no.queue.is.bound.to.this",
                b"event",
                message_type="t",
                message_id="T-2",
            )
    finally:
        await publisher.close()
