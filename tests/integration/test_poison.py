"""Poison on the ingest and batch queues is dead-lettered with reasons; good messages flow.
Ingest dead letters never expire; a refused batch, answered or not, does (it holds clear civil
numbers)."""

import signal
import subprocess
import time

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.copies import EXPIRES_HEADER
from sanad.amqp.topology import BATCH, RATED, REASON_HEADER, STATUS_CHANGED, SUBMITTED, Topology
from sanad.cli.batch_send import send
from sanad.records import SUBMITTED_TYPE
from sanad.settings import amqp_user
from sanad.v1 import events_pb2, intake_pb2
from tests.integration.conftest import (
    COUNTER,
    Stack,
    eventually,
    open_centre_with_service,
    submit_request,
)
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl
from tests.integration.workers_support import (
    RATED_TYPE,
    STATUS_CHANGED_TYPE,
    dead_letter_messages,
    dead_letters,
    delete_retry_queues,
    publish,
    start_batch_worker,
)

pytestmark = pytest.mark.integration

GARBAGE = b"\x00\xffnot protobuf"


async def _poison_then_good(
    stack: Stack, poison: list[tuple[str, bytes, str]]
) -> tuple[str, subprocess.Popen[bytes]]:
    """Publish the poison on the transactions exchange, submit one good transaction through
    intake behind it, start the ingest worker: the good one's id, and the worker."""
    center_id, service = await open_centre_with_service(stack)
    await publish(stack.amqp_url, Topology(stack.prefix).transactions_exchange, poison)
    good = await stack.intake.SubmitTransaction(
        submit_request(center_id, service, beneficiary_civil_number="55554444"), timeout=10
    )
    return good.transaction_id, stack.start_worker()


def _kept_until_taken(letters: list[aio_pika.abc.AbstractIncomingMessage]) -> list[str]:
    """The reasons of dead letters that carry no expiration (all of them, or the test fails)."""
    for letter in letters:
        assert letter.expiration is None
        assert EXPIRES_HEADER not in (letter.headers or {})
    return [str((letter.headers or {}).get(REASON_HEADER)) for letter in letters]


def _expiring(letters: list[aio_pika.abc.AbstractIncomingMessage]) -> list[str]:
    """The reasons of dead letters that the broker drops in time (all of them, or the test
    fails)."""
    for letter in letters:
        assert letter.expiration is not None
        assert EXPIRES_HEADER in (letter.headers or {})
    return [str((letter.headers or {}).get(REASON_HEADER)) for letter in letters]


async def _until_stored(stack: Stack, mongo_url: str, transaction_id: str) -> None:
    """Until the ingest worker has stored that transaction."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    try:

        async def stored() -> bool:
            return await db.transactions.find_one({"_id": transaction_id}) is not None

        await eventually(stored, within_s=30)
    finally:
        await client.close()


async def test_poison_is_dead_lettered_with_reasons_and_good_messages_are_stored(
    stack: Stack, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    good, worker = await _poison_then_good(
        stack,
        [
            (SUBMITTED, GARBAGE, SUBMITTED_TYPE),
            (SUBMITTED, b"{}", "sanad.v1.Unknown"),
        ],
    )
    try:
        await _until_stored(stack, mongo_url, good)
        letters = await dead_letter_messages(stack, topology.ingest_queue, expected=2)
        assert sorted(_kept_until_taken(letters)) == ["undecodable", "unknown-type"]
        assert await stack.queue_depth(topology.ingest_queue) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


async def test_poison_status_changes_and_ratings_are_dead_lettered_while_good_ones_flow(
    stack: Stack, mongo_url: str
) -> None:
    topology = Topology(stack.prefix)
    good, worker = await _poison_then_good(
        stack,
        [
            (STATUS_CHANGED, GARBAGE, STATUS_CHANGED_TYPE),
            (STATUS_CHANGED, b"{}", "sanad.v1.Nope"),
            (
                STATUS_CHANGED,
                events_pb2.TransactionStatusChanged(transaction_id="T1").SerializeToString(),
                STATUS_CHANGED_TYPE,
            ),
            (RATED, GARBAGE, RATED_TYPE),
            (RATED, b"{}", "sanad.v1.Nope"),
            (RATED, events_pb2.TransactionRated(rating=3).SerializeToString(), RATED_TYPE),
        ],
    )
    try:
        reasons = await dead_letters(stack, topology.ingest_queue, expected=6)
        assert sorted(reasons) == ["invalid"] * 2 + ["undecodable"] * 2 + ["unknown-type"] * 2
        await _until_stored(stack, mongo_url, good)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        await delete_retry_queues(stack)


async def test_poison_batches_are_dead_lettered_with_reasons_and_good_batches_are_answered(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    topology = Topology(stack.prefix)
    worker = start_batch_worker(stack)
    try:
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            await topology.declare(await connection.channel())  # idempotent, as the worker does
        await publish(
            stack.amqp_url,
            topology.batch_exchange,
            [
                (BATCH, GARBAGE, SUBMISSION_TYPE),
                (BATCH, b"{}", "sanad.v1.Nope"),
                (
                    BATCH,
                    events_pb2.BatchSubmission(center_id=center_id).SerializeToString(),
                    SUBMISSION_TYPE,
                ),
            ],
        )
        good = events_pb2.BatchSubmission(
            batch_id=f"good-{time.time_ns()}",
            center_id=center_id,
            items=[
                intake_pb2.SubmitTransactionRequest(
                    request_id="g-1",
                    service_code=service,
                    channel=COUNTER,
                    fee_baisa=5000,
                    beneficiary_civil_number="55554444",
                )
            ],
        )
        [answer] = await send(stack.amqp_url, stack.prefix, [good], wait_s=30)
        assert len(answer.accepted) == 1
        # Published without a reply queue: refused, answered to nobody, dropped in time.
        letters = await dead_letter_messages(stack, topology.batch_queue, expected=3)
        assert sorted(_expiring(letters)) == ["invalid", "undecodable", "unknown-type"]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)


class _RawLongString(str):
    """A header value the test's client sends as these raw bytes: an AMQP long string that is
    not UTF-8, as any client may send (AMQP long strings are binary)."""

    raw = b""


async def test_a_header_that_is_not_utf8_dead_letters_its_message_and_blocks_nothing(
    stack: Stack, mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client decodes such a header to bytes, which it cannot encode again: copying it into
    # the dead letter failed the whole consumer, which reconnected, got it again and failed
    # again until the broker's delivery limit set it and the good messages delivered with it
    # aside, unexplained.
    import pamqp.encode  # noqa: PLC0415 - patched for this test's own publishes only

    plain = pamqp.encode.long_string

    def long_string(value: str) -> bytes:
        if isinstance(value, _RawLongString):
            return len(value.raw).to_bytes(4, "big") + value.raw
        return plain(value)

    monkeypatch.setattr(pamqp.encode, "long_string", long_string)
    monkeypatch.setitem(pamqp.encode.METHODS, "longstr", long_string)
    binary = _RawLongString("x")
    binary.raw = b"\xff\xfe"
    topology = Topology(stack.prefix)
    center_id, service = await open_centre_with_service(stack)
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.transactions_exchange)
        await exchange.publish(
            aio_pika.Message(
                GARBAGE,
                type=SUBMITTED_TYPE,
                headers={"k": binary, "n": [binary]},
                user_id=amqp_user(stack.amqp_url),
            ),
            routing_key=SUBMITTED,
        )
    good = await stack.intake.SubmitTransaction(
        submit_request(center_id, service, beneficiary_civil_number="55553333"), timeout=10
    )
    worker = stack.start_worker()
    try:
        await _until_stored(stack, mongo_url, good.transaction_id)
        [letter] = await dead_letter_messages(stack, topology.ingest_queue, expected=1)
        assert _kept_until_taken([letter]) == ["undecodable"]
        assert (letter.headers or {})["k"] == b"\xff\xfe"  # the same bytes, as a byte array
        assert await stack.queue_depth(topology.ingest_queue) == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


@needs_rabbitmqctl
async def test_the_workers_broker_connections_are_named_for_operators(stack: Stack) -> None:
    # An operator closing or tracing a worker's connection finds it by name, as intake's; the
    # chaos helper had to match socket ports.
    topology = Topology(stack.prefix)
    ingest, batch = stack.start_worker(), start_batch_worker(stack)
    try:
        names = {
            f"sanad consumer {topology.ingest_queue}",
            f"sanad consumer {topology.batch_queue}",
        }

        async def both_named() -> bool:
            listing = await rabbitmqctl("list_connections", "client_properties", "-q")
            return all(name in listing for name in names)

        await eventually(both_named, within_s=30, every_s=0.5)
    finally:
        for worker in (ingest, batch):
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        await delete_retry_queues(stack)
