"""A message whose AMQP properties the client cannot decode (a timestamp past the year 9999, a
short string or a headers key that is not UTF-8) is dead-lettered by the worker as
`undecodable`, with its reason, on the real broker: the consumer keeps its connection, and
the good messages around it are stored once, never redelivered (DESIGN §5.4)."""

import asyncio
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiormq import spec
from pymongo import AsyncMongoClient

from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.copies import UNDECODABLE_HEADER
from sanad.amqp.dead_letter_pass import Action, Pass, pass_over
from sanad.amqp.dead_letters import DeadLetter
from sanad.amqp.topology import DETAIL_HEADER, REASON_HEADER, SUBMITTED, Topology
from sanad.amqp.verdicts import Outcome
from sanad.records import SUBMITTED_TYPE, Document
from tests.integration.conftest import eventually
from tests.integration.workers_support import submitted
from workers.ingest.handlers import IngestHandler
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration

NOT_UTF8 = b"\xff\xfe"
NO_TIME = struct.pack(">Q", 2**63 - 1)


class RawProperties(spec.Basic.Properties):
    """Properties whose named values go on the wire as the given bytes."""

    def __init__(self, raw: dict[str, bytes], **values: Any) -> None:
        super().__init__(**values)
        self.raw = raw

    def encode_property(self, name: str, value: Any) -> bytes:
        if name in self.raw:
            return self.raw[name]
        return super().encode_property(name, value)  # type: ignore[no-any-return]


def bad_key_table() -> bytes:
    entry = bytes([len(NOT_UTF8)]) + NOT_UTF8 + b"S" + struct.pack(">I", 2) + b"ok"
    return struct.pack(">I", len(entry)) + entry


AT = datetime(2024, 5, 1, 9, tzinfo=UTC)
# transaction id -> the property sent undecodable: its name in pamqp, in aio-pika, its bytes.
MESSAGES: dict[str, tuple[str, str, bytes] | None] = {
    "T-good-1": None,
    "T-timestamp": ("timestamp", "timestamp", NO_TIME),
    "T-correlation": ("correlation_id", "correlation_id", bytes([2]) + NOT_UTF8),
    "T-headers": ("headers", "headers", bad_key_table()),
    "T-type": ("message_type", "type", bytes([2]) + NOT_UTF8),
    "T-good-2": None,
}


def body(transaction_id: str) -> bytes:
    return submitted(transaction_id, "C1", "S", AT).SerializeToString()


async def publish_raw(amqp_url: str, exchange: str, routing_key: str) -> None:
    """What any publisher may send: pamqp's encoder, with the named properties as raw bytes."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        for transaction_id, poison in MESSAGES.items():
            properties = RawProperties(
                {poison[0]: poison[2]} if poison else {},
                content_type="application/x-protobuf",
                delivery_mode=2,
                headers={"x-trace": transaction_id},
                correlation_id=transaction_id,
                message_id=transaction_id,
                timestamp=datetime.now(UTC),
                message_type=SUBMITTED_TYPE,
            )
            confirm = await channel.basic_publish(
                body(transaction_id),
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
            )
            assert isinstance(confirm, spec.Basic.Ack)
    finally:
        await connection.close()


@pytest.fixture
async def store(mongo_url: str, database_name: str) -> AsyncIterator[IngestStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield IngestStore(client, client[database_name])
    await client.close()


async def test_undecodable_properties_are_dead_lettered_with_their_reason_and_the_rest_stored(
    amqp_url: str, topology: Topology, store: IngestStore
) -> None:
    ingest = IngestHandler(store)
    redelivered: list[str] = []

    async def handler(batch: Sequence[AbstractIncomingMessage]) -> Sequence[Outcome]:
        redelivered.extend(str(m.message_id) for m in batch if m.redelivered)
        return await ingest(batch)

    options = BatchOptions(prefetch=10, max_messages=10, max_wait_s=0.2, broker_timeout_s=5)
    consumer = MicroBatchConsumer(amqp_url, topology, topology.ingest_queue, handler, options)
    await publish_raw(amqp_url, topology.transactions_exchange, SUBMITTED)
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    letters = await take_dead_letters(amqp_url, topology, expected=4, running=running)
    stop.set()
    await asyncio.wait_for(running, 15)  # raises BrokerConnectionLost had the connection closed

    assert redelivered == []
    stored = {doc["_id"] async for doc in store.transactions.find({}, {"_id": 1})}
    assert stored == {"T-good-1", "T-good-2"}
    named = {str(letter.message_id): letter for letter in letters}
    assert set(named) == {"T-timestamp", "T-correlation", "T-headers", "T-type"}
    for transaction_id, letter in named.items():
        headers = letter.headers or {}
        assert headers[REASON_HEADER] == "undecodable"
        poison = MESSAGES[transaction_id]
        assert poison is not None
        property_name = poison[1]
        assert str(headers[DETAIL_HEADER]).startswith(
            f"AMQP properties the client cannot decode: {property_name} "
        )
        assert str(headers[UNDECODABLE_HEADER]).startswith(property_name)
        assert letter.body == body(transaction_id)


async def take_dead_letters(
    amqp_url: str, topology: Topology, expected: int, running: asyncio.Task[None]
) -> list[AbstractIncomingMessage]:
    letters: list[AbstractIncomingMessage] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(topology.dead_queue(topology.ingest_queue))

        async def taken() -> bool:
            assert not running.done(), "the consumer stopped"
            if (letter := await dead.get(fail=False)) is not None:
                letters.append(letter)
                await letter.ack()
            return len(letters) >= expected

        await eventually(taken, within_s=30, every_s=0.05)
    return letters


async def test_a_pass_over_dead_letters_reads_a_letter_it_cannot_decode_and_keeps_it(
    amqp_url: str, topology: Topology
) -> None:
    # As the broker sets aside a message at its delivery limit: with its properties as sent.
    dead_name = topology.dead_queue(topology.ingest_queue)
    await publish_raw(amqp_url, "", dead_name)

    first: list[DeadLetter] = []
    await pass_over(amqp_url, topology.prefix, "ingest", keeping(first), Pass())

    assert len(first) == len(MESSAGES)
    again: list[DeadLetter] = []
    await pass_over(amqp_url, topology.prefix, "ingest", keeping(again), Pass())
    assert [letter.message_id for letter in again] == [letter.message_id for letter in first]


def keeping(seen: list[DeadLetter]) -> Callable[[DeadLetter], Action]:
    """A choose() of a pass that keeps every letter, noting it in seen."""

    def keep(letter: DeadLetter) -> Action:
        seen.append(letter)
        return Action.KEEP

    return keep
