"""Against the real broker: a message its handler cannot take (the handler raises) is
dead-lettered as `handler-failed`, and the messages beside it are handled and acked."""

import asyncio
from collections.abc import Sequence

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.handling import BROKER_ERRORS
from sanad.amqp.topology import DETAIL_HEADER, REASON_HEADER, SUBMITTED, Topology
from sanad.amqp.verdicts import Dead, Outcome
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


async def test_a_message_whose_handler_raises_is_dead_lettered_and_the_rest_are_acked(
    amqp_url: str, amqp_prefix: str
) -> None:
    topology = Topology(amqp_prefix)
    handled: list[bytes] = []

    async def handler(batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        if any(message.body == b"poison" for message in batch):
            raise KeyError("a field the handler needs")
        handled.extend(message.body for message in batch)
        return [None] * len(batch)

    options = BatchOptions(max_wait_s=0.5, max_backoff_s=0.05)
    consumer = MicroBatchConsumer(amqp_url, topology, topology.ingest_queue, handler, options)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare(channel)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        for body in (b"first", b"poison", b"last"):
            await exchange.publish(aio_pika.Message(body), routing_key=SUBMITTED)
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(stop))
        dead = await channel.get_queue(topology.dead_queue(topology.ingest_queue))
        letters: list[AbstractIncomingMessage] = []

        async def dead_lettered() -> bool:
            found = await dead.get(fail=False)
            if found is not None:
                letters.append(found)
                await found.ack()
            return bool(letters)

        await eventually(dead_lettered, within_s=20, every_s=0.05)
        stop.set()
        await asyncio.wait_for(running, timeout=20)
        work = await channel.get_queue(topology.ingest_queue)
        left = await work.get(fail=False)

    assert sorted(handled) == [b"first", b"last"]
    assert [m.body for m in letters] == [b"poison"]
    headers = letters[0].headers or {}
    assert headers[REASON_HEADER] == "handler-failed"
    assert "KeyError" in str(headers[DETAIL_HEADER])
    assert left is None  # every message acked: none waits for a redelivery


async def test_a_dead_letter_the_broker_cannot_route_leaves_its_message_in_the_queue(
    amqp_url: str, amqp_prefix: str
) -> None:
    topology = Topology(amqp_prefix)

    async def handler(batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        return [Dead("invalid", "not a transaction") for _ in batch]

    consumer = MicroBatchConsumer(
        amqp_url, topology, topology.ingest_queue, handler, BatchOptions()
    )
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        running = asyncio.create_task(consumer.run(asyncio.Event()))

        async def consuming() -> bool:
            return consumer.connected

        await eventually(consuming, within_s=10, every_s=0.05)
        # Someone deletes the dead-letter queue while the worker runs: the dead exchange
        # routes nowhere until the worker declares the topology again (on reconnecting).
        await channel.queue_delete(topology.dead_queue(topology.ingest_queue))
        exchange = await channel.get_exchange(topology.transactions_exchange)
        await exchange.publish(aio_pika.Message(b"poison"), routing_key=SUBMITTED)

        with pytest.raises(BROKER_ERRORS):
            await asyncio.wait_for(running, timeout=20)

        work = await channel.get_queue(topology.ingest_queue)
        kept: list[bytes] = []

        async def back_in_its_queue() -> bool:
            found = await work.get(fail=False, no_ack=True)
            if found is not None:
                kept.append(found.body)
            return bool(kept)

        await eventually(back_in_its_queue, within_s=10, every_s=0.05)
    assert kept == [b"poison"]  # not acked as if it had been dead-lettered
