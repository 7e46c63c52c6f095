"""Packed submissions on the real broker: fewer messages than items, each item stored once,
a poison item dead-lettered alone while the rest of its pack is stored."""

import asyncio
import signal
import uuid

import aio_pika
import pytest
from prometheus_client import REGISTRY

from sanad.amqp.packing import pack
from sanad.amqp.topology import ITEMS_HEADER, REASON_HEADER, SUBMITTED, Topology
from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE
from sanad.settings import amqp_user
from sanad.v1 import events_pb2
from tests.integration.conftest import (
    Stack,
    eventually,
    open_centre_with_service,
    submit_request,
)
from tests.integration.workers_support import start_ingest_worker, submitted

pytestmark = pytest.mark.integration


def pack_counts(exchange: str) -> tuple[float, float]:
    """(messages, items) the packing publisher sent on an exchange, from intake's metrics."""
    labels = {"exchange": exchange}
    messages = REGISTRY.get_sample_value("sanad_amqp_pack_items_count", labels) or 0.0
    items = REGISTRY.get_sample_value("sanad_amqp_pack_items_sum", labels) or 0.0
    return messages, items


async def test_concurrent_submissions_share_messages_and_each_is_stored_once(
    stack: Stack, db
) -> None:  # type: ignore[no-untyped-def]
    center_id, service = await open_centre_with_service(stack)
    exchange = Topology(stack.prefix).transactions_exchange
    run = uuid.uuid4().hex[:8]
    # 150 calls at once, 50 of them a second time with the same request id (a client retry).
    requests = [submit_request(center_id, service, f"{run}-{n}") for n in range(150)]
    requests += requests[:50]
    replies = await asyncio.gather(
        *(stack.intake.SubmitTransaction(request, timeout=20) for request in requests)
    )
    ids = [reply.transaction_id for reply in replies]
    assert ids[150:] == ids[:50]
    assert len(set(ids)) == 150
    messages, items = pack_counts(exchange)
    assert items == 200  # every accepted call's message was published, replays included
    assert messages < items  # and some travelled together

    worker = start_ingest_worker(stack)
    try:

        async def stored() -> bool:
            return await db.transactions.count_documents({"_id": {"$in": ids}}) == 150

        await eventually(stored, within_s=45)
        assert await stack.queue_depth(Topology(stack.prefix).ingest_queue) == 0
        docs = await db.transactions.find({"center_id": center_id}).to_list()
        assert sorted(d["_id"] for d in docs) == sorted(set(ids))  # once each, none lost
        rollup = await db.rollups_yearly.find_one({"center_id": center_id})
        assert rollup is not None
        assert rollup["submitted"] == 150
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


async def test_a_poison_item_is_dead_lettered_alone_and_the_rest_of_its_pack_is_stored(
    stack: Stack, db
) -> None:  # type: ignore[no-untyped-def]
    topology = Topology(stack.prefix)
    run = uuid.uuid4().hex
    center = f"C-{run[:6]}"
    good = [submitted(f"{run}-{n}", center, "ROP-VISA").SerializeToString() for n in range(3)]
    poison = events_pb2.TransactionSubmitted(
        transaction_id=f"{run}-poison", center_id=center
    ).SerializeToString()
    items = [good[0], poison, good[1], good[2]]
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        await exchange.publish(
            aio_pika.Message(
                pack(items),
                type=SUBMITTED_PACK_TYPE,
                message_id=f"{run}-0",  # as intake's packer names a pack: its first item
                headers={ITEMS_HEADER: len(items)},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=amqp_user(stack.amqp_url),  # as intake's publisher sets it
            ),
            routing_key=SUBMITTED,
        )
    worker = start_ingest_worker(stack)
    try:

        async def stored() -> bool:
            return await db.transactions.count_documents({"center_id": center}) == 3

        await eventually(stored, within_s=45)
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            channel = await connection.channel()
            dead = await channel.get_queue(topology.dead_queue(topology.ingest_queue))
            letters: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def drained() -> bool:
                message = await dead.get(fail=False)
                if message is not None:
                    letters.append(message)
                    await message.ack()
                return bool(letters)

            await eventually(drained, within_s=20, every_s=0.05)
            await asyncio.sleep(0.5)
            assert await dead.get(fail=False) is None  # only the poison item
        (letter,) = letters
        assert letter.type == SUBMITTED_TYPE
        assert letter.body == poison
        assert letter.message_id == f"{run}-poison"  # its own id, not the pack's first item's
        assert (letter.headers or {}).get(REASON_HEADER) == "invalid"
        assert ITEMS_HEADER not in (letter.headers or {})
        assert await stack.queue_depth(topology.ingest_queue) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
