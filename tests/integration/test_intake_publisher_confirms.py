"""The confirmed publisher against the real broker: a confirmed message is persistent and
labelled; a message no queue takes (mandatory) is returned and never reported as sent."""

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from sanad.amqp.publisher import ConfirmedPublisher
from sanad.amqp.topology import SUBMITTED, Topology
from sanad.errors import Unavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def topology(amqp_prefix: str) -> Topology:
    return Topology(amqp_prefix)


@pytest.fixture
async def publisher(amqp_url: str, topology: Topology) -> AsyncIterator[ConfirmedPublisher]:
    """Connected to the real broker, its topology declared; closed after the test."""
    publisher = ConfirmedPublisher(amqp_url, topology, 5.0)
    await asyncio.wait_for(publisher.connect(), 20)
    yield publisher
    await publisher.close()


async def test_a_confirmed_message_reaches_the_quorum_queue_persistent_and_labelled(
    publisher: ConfirmedPublisher, topology: Topology, amqp_url: str
) -> None:
    await publisher.publish(
        topology.transactions_exchange,
        SUBMITTED,
        b"event",
        message_type="sanad.v1.TransactionSubmitted",
        message_id="T-1",
    )
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
    publisher: ConfirmedPublisher, topology: Topology
) -> None:
    with pytest.raises(Unavailable):
        await publisher.publish(
            topology.transactions_exchange,
            "no.queue.is.bound.to.this",
            b"event",
            message_type="t",
            message_id="T-2",
        )


async def test_two_unroutable_publishes_with_one_message_id_are_both_unavailable(
    publisher: ConfirmedPublisher, topology: Topology
) -> None:
    # A rating sent again while its first publish awaits its confirm goes out under the same
    # message id; aiormq tells returned messages apart by that id.
    outcomes = await asyncio.gather(
        *(
            publisher.publish(
                topology.transactions_exchange,
                "no.queue.is.bound.to.this",
                b"rating %d" % n,
                message_type="t",
                message_id="rating-T-3",
            )
            for n in range(3)
        ),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes] == [Unavailable] * 3
