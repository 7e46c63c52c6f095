"""Tests and benchmarks leave nothing of theirs on the shared broker: every queue and exchange
of a prefix is deleted after them."""

import aio_pika
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity

from sanad.amqp.topology import Topology, delete_topology
from sanad.domain.ids import new_id
from tests.conftest import AMQP_URL


async def test_deleting_a_topology_leaves_no_queue_or_exchange_of_its_prefix() -> None:
    topology = Topology(f"tidy-{new_id()[:10]}")
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        await topology.declare(await connection.channel())

        await delete_topology(AMQP_URL, topology.prefix)

        for exchange in topology.all_exchanges():
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.declare_exchange(exchange, passive=True)
        for queue in topology.all_queues():
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.declare_queue(queue, passive=True)


async def test_deleting_a_topology_twice_or_never_declared_is_quiet() -> None:
    prefix = f"tidy-{new_id()[:10]}"
    await delete_topology(AMQP_URL, prefix)
    await delete_topology(AMQP_URL, prefix)
