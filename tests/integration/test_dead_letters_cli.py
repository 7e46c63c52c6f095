"""`sanadctl dead-letters` against the real broker: listing leaves the queue as it was, replay
sends the chosen letters back to the work queue as they first arrived and keeps the rest, drop
removes exactly the chosen ones. A refused batch's letter keeps its expiry when a pass puts it
back, and loses it when replayed. A replay the work queue refuses never hands its letter back
unacknowledged, so a delivery limit on the dead-letter queue never drops it."""

import asyncio
import json
import os
import re
import sys

import aio_pika
import pytest

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.copies import EXPIRES_HEADER, expiry_time
from sanad.amqp.dead_letter_pass import Action, Pass, pass_over
from sanad.amqp.dead_letters import REPLAYS_HEADER
from sanad.amqp.topology import DETAIL_HEADER, REASON_HEADER, SUBMITTED, Topology
from tests.integration.conftest import eventually
from tests.integration.rabbitmqctl import needs_rabbitmqctl, rabbitmqctl, set_policy
from tests.integration.workers_support import queue_depth

pytestmark = pytest.mark.integration

LETTERS = [
    ("m-0", "unknown-type", "message type 'x.Old' is not handled here"),
    ("m-1", "undecodable", "not a valid sanad.v1.TransactionSubmitted"),
    ("m-2", "unknown-type", "message type 'x.Old' is not handled here"),
]


async def sanadctl(amqp_url: str, prefix: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "SANAD_AMQP_URL": amqp_url, "SANAD_AMQP_PREFIX": prefix}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sanad.cli", "--json", "dead-letters", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


async def dead_letter_batches(amqp_url: str, prefix: str, *expiring_s: float | None) -> None:
    """Set refused batches aside as the batch worker does, one per expiry (None: kept)."""
    topology = Topology(prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare(channel)
        dead = await channel.get_exchange(topology.dead_exchange)
        for n, expiration in enumerate(expiring_s):
            headers = {REASON_HEADER: "not-allowed", DETAIL_HEADER: "not allowed"}
            if expiration is not None:
                headers[EXPIRES_HEADER] = expiry_time(expiration)
            message = aio_pika.Message(
                b"items with civil numbers",
                type=SUBMISSION_TYPE,
                message_id=f"b-{n}",
                reply_to="amq.gen-submitter",
                headers=headers,
                expiration=expiration,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await dead.publish(message, routing_key=topology.batch_queue)


async def dead_letter_three(amqp_url: str, prefix: str, *, declare: bool = True) -> None:
    """Set three messages aside as the ingest worker does: through P.dead, with a reason."""
    topology = Topology(prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        if declare:
            await topology.declare(channel)
        dead = await channel.get_exchange(topology.dead_exchange)
        for message_id, reason, detail in LETTERS:
            message = aio_pika.Message(
                f"body of {message_id}".encode(),
                type="sanad.v1.TransactionSubmitted",
                message_id=message_id,
                headers={REASON_HEADER: reason, DETAIL_HEADER: detail, "x-sanad-queue": "q"},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await dead.publish(message, routing_key=topology.ingest_queue)


async def drain(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message of a queue, taken off it."""
    taken = []
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue, ensure=False)
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
    return taken


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def listed(out: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The letters `list --json` printed, and its last line: the total and counts by reason."""
    *letters, counts = lines(out)
    return letters, counts


async def test_listing_twice_shows_every_letter_in_order_and_leaves_the_queue_as_it_was(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)

    first = await sanadctl(amqp_url, amqp_prefix, "list")
    second = await sanadctl(amqp_url, amqp_prefix, "list")

    assert first[0] == 0, first[2]
    shown, counts = listed(first[1])
    assert [(n["message_id"], n["reason"], n["detail"]) for n in shown] == LETTERS
    assert [n["position"] for n in shown] == [0, 1, 2]
    assert counts == {"total": 3, "shown": 3, "reasons": {"undecodable": 1, "unknown-type": 2}}
    assert lines(second[1]) == lines(first[1])
    left = await drain(amqp_url, Topology(amqp_prefix).dead_queue(f"{amqp_prefix}.ingest"))
    assert [m.message_id for m in left] == ["m-0", "m-1", "m-2"]
    assert [m.body for m in left] == [b"body of m-0", b"body of m-1", b"body of m-2"]


async def test_listing_with_a_limit_says_how_many_letters_wait_and_an_empty_queue_says_zero(
    amqp_url: str, amqp_prefix: str
) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        await Topology(amqp_prefix).declare(await connection.channel())
    empty = await sanadctl(amqp_url, amqp_prefix, "list")
    await dead_letter_three(amqp_url, amqp_prefix)

    code, out, err = await sanadctl(amqp_url, amqp_prefix, "list", "--limit", "1")

    assert code == 0, err
    shown, counts = listed(out)
    assert [n["message_id"] for n in shown] == ["m-0"]
    assert counts == {"total": 3, "shown": 1, "reasons": {"undecodable": 1, "unknown-type": 2}}
    # Before, an empty queue printed nothing, and a limit hid how many more letters wait.
    assert empty[:2] == (0, '{"total": 0, "shown": 0, "reasons": {}}\n')


async def test_replay_by_reason_sends_those_back_as_first_sent_and_keeps_the_others(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)

    code, out, err = await sanadctl(amqp_url, amqp_prefix, "replay", "--reason", "unknown-type")

    assert code == 0, err
    assert lines(out) == [{"replayed": 2, "kept": 1, "reasons": {"unknown-type": 2}}]
    topology = Topology(amqp_prefix)
    replayed = await drain(amqp_url, topology.ingest_queue)
    assert [m.message_id for m in replayed] == ["m-0", "m-2"]
    assert [m.body for m in replayed] == [b"body of m-0", b"body of m-2"]
    for message in replayed:
        headers = message.headers or {}
        assert message.type == "sanad.v1.TransactionSubmitted"
        assert REASON_HEADER not in headers
        assert DETAIL_HEADER not in headers
        assert "x-sanad-queue" not in headers
        assert headers[REPLAYS_HEADER] == 1
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert [m.message_id for m in kept] == ["m-1"]
    assert (kept[0].headers or {})[REASON_HEADER] == "undecodable"


async def test_replay_with_a_limit_replays_the_oldest_and_keeps_the_order_of_the_rest(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)

    code, out, _ = await sanadctl(amqp_url, amqp_prefix, "replay", "--limit", "1")

    assert code == 0
    assert lines(out)[0]["replayed"] == 1
    topology = Topology(amqp_prefix)
    assert [m.message_id for m in await drain(amqp_url, topology.ingest_queue)] == ["m-0"]
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert [m.message_id for m in kept] == ["m-1", "m-2"]


async def test_batch_letters_are_not_replayed_and_a_missing_queue_is_a_clear_error(
    amqp_url: str, amqp_prefix: str
) -> None:
    code, _, err = await sanadctl(amqp_url, amqp_prefix, "replay", "--queue", "batch")
    assert code == 2
    assert "same batch id" in err

    code, out, err = await sanadctl(amqp_url, amqp_prefix, "list")
    assert code == 1
    assert out == ""
    assert "dead letters of ingest not reached" in err
    assert "Traceback" not in err


async def test_a_replay_whose_work_queue_is_missing_takes_no_letter(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)
    topology = Topology(amqp_prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.queue_delete(topology.ingest_queue)

    code, _, err = await sanadctl(amqp_url, amqp_prefix, "replay")

    assert code == 1
    assert "not reached" in err
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert [m.message_id for m in kept] == ["m-0", "m-1", "m-2"]


@needs_rabbitmqctl
async def test_a_replay_into_a_full_work_queue_stops_saying_so_and_keeps_every_letter(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)
    topology = Topology(amqp_prefix)
    policy = f"full-{amqp_prefix}"
    pattern = f"^{re.escape(topology.ingest_queue)}$"
    await set_policy(policy, pattern, json.dumps({"max-length": 1}), priority=100)
    try:
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.transactions_exchange)

            async def full() -> bool:
                try:
                    await exchange.publish(aio_pika.Message(b"waiting"), routing_key=SUBMITTED)
                except aio_pika.exceptions.DeliveryError:
                    return True
                return False

            await eventually(full, within_s=10)

        code, _, err = await sanadctl(amqp_url, amqp_prefix, "replay")
    finally:
        await rabbitmqctl("clear_policy", policy)

    assert code == 1
    assert "the broker refused a letter: its queue is full" in err
    assert "the letter it failed on (m-0, unknown-type) is kept, at the back of the queue" in err
    assert "Traceback" not in err
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert [m.message_id for m in kept] == ["m-1", "m-2", "m-0"]


async def test_listing_batch_letters_leaves_a_refused_batch_to_expire_when_it_would_have(
    amqp_url: str, amqp_prefix: str
) -> None:
    # The expiring letter first: the broker drops expired letters at the head of the queue.
    await dead_letter_batches(amqp_url, amqp_prefix, 8.0, None)
    topology = Topology(amqp_prefix)
    dead_queue = topology.dead_queue(topology.batch_queue)

    code, out, err = await sanadctl(amqp_url, amqp_prefix, "list", "--queue", "batch")

    assert code == 0, err
    shown, counts = listed(out)
    assert [n["message_id"] for n in shown] == ["b-0", "b-1"]
    assert counts == {"total": 2, "shown": 2, "reasons": {"not-allowed": 2}}

    async def expired() -> bool:
        return await queue_depth(amqp_url, dead_queue) == 1

    await eventually(expired, within_s=30, every_s=0.5)
    assert [m.message_id for m in await drain(amqp_url, dead_queue)] == ["b-1"]
    assert [bool(n["expires_at"]) for n in shown] == [True, False]


async def test_a_replayed_batch_letter_never_expires_in_its_work_queue(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_batches(amqp_url, amqp_prefix, 60.0)
    done = Pass()

    # sanadctl refuses batch replays (the submitter sends the batch again); the library does not.
    await pass_over(amqp_url, amqp_prefix, "batch", lambda letter: Action.REPLAY, done)

    assert done.replayed == {"not-allowed": 1}
    [replayed] = await drain(amqp_url, Topology(amqp_prefix).batch_queue)
    assert replayed.message_id == "b-0"
    assert replayed.expiration is None
    assert EXPIRES_HEADER not in (replayed.headers or {})
    assert (replayed.headers or {})[REPLAYS_HEADER] == 1


async def declare_with(
    amqp_url: str, prefix: str, work: dict[str, object], dead: dict[str, object]
) -> None:
    """The topology, then its ingest work and dead-letter queues declared anew with these
    arguments (the dead-letter queue bound again to P.dead)."""
    topology = Topology(prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await topology.declare(channel)
        dead_name = topology.dead_queue(topology.ingest_queue)
        for name in (topology.ingest_queue, dead_name):
            await channel.queue_delete(name)
        await channel.declare_queue(topology.ingest_queue, durable=True, arguments=work)
        queue = await channel.declare_queue(dead_name, durable=True, arguments=dead)
        await queue.bind(topology.dead_exchange, topology.ingest_queue)


async def fill(amqp_url: str, queue: str) -> None:
    """Publish to a bounded queue until it refuses (a quorum queue takes one past its bound)."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)

        async def full() -> bool:
            try:
                await channel.default_exchange.publish(aio_pika.Message(b"w"), routing_key=queue)
            except aio_pika.exceptions.DeliveryError:
                return True
            return False

        await eventually(full, within_s=10)


async def test_a_replay_that_keeps_failing_never_brings_a_letter_to_its_delivery_limit(
    amqp_url: str, amqp_prefix: str
) -> None:
    # A work queue that refuses every publish (its bound reached), and a dead-letter queue with
    # a delivery limit and no dead-letter exchange: RabbitMQ 4.0 to 4.2 give one of 20 to every
    # quorum queue; 1 here, so a letter handed back twice is dropped.
    bounded = {"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"}
    await declare_with(
        amqp_url, amqp_prefix, bounded, {"x-queue-type": "quorum", "x-delivery-limit": 1}
    )
    await fill(amqp_url, Topology(amqp_prefix).ingest_queue)
    await dead_letter_three(amqp_url, amqp_prefix, declare=False)

    errors = [(await sanadctl(amqp_url, amqp_prefix, "replay"))[::2] for _ in range(3)]

    assert [code for code, _ in errors] == [1, 1, 1]
    for (_, err), (message_id, reason, _) in zip(errors, LETTERS, strict=True):
        assert err.splitlines() == [
            "error: the pass over the dead letters of ingest stopped after 0 letters (0 replayed,"
            " 0 kept, 0 dropped): the broker refused a letter: its queue is full (its workers"
            f" are behind) or has no leader; the letter it failed on ({message_id}, {reason}) is"
            " kept, at the back of the queue"
        ]
    topology = Topology(amqp_prefix)
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    # Each failed replay put its letter at the back: three runs went round the queue once.
    assert [m.message_id for m in kept] == ["m-0", "m-1", "m-2"]
    assert [(m.headers or {}).get("x-delivery-count", 0) for m in kept] == [0, 0, 0]
    assert not any(m.redelivered for m in kept)


async def test_drop_removes_the_letters_of_a_reason_and_keeps_the_others_in_order(
    amqp_url: str, amqp_prefix: str
) -> None:
    await dead_letter_three(amqp_url, amqp_prefix)

    refused = await sanadctl(amqp_url, amqp_prefix, "drop")
    code, out, err = await sanadctl(amqp_url, amqp_prefix, "drop", "--reason", "unknown-type")

    assert refused[0] == 2
    assert "needs --reason or --id" in refused[2]
    assert code == 0, err
    assert lines(out) == [{"dropped": 2, "kept": 1, "reasons": {"unknown-type": 2}}]
    topology = Topology(amqp_prefix)
    assert [m.message_id for m in await drain(amqp_url, topology.ingest_queue)] == []
    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert [m.message_id for m in kept] == ["m-1"]
    assert (kept[0].headers or {})[REASON_HEADER] == "undecodable"


async def test_a_batch_the_broker_set_aside_is_listed_without_its_senders_reason_and_kept(
    amqp_url: str, amqp_prefix: str
) -> None:
    # Sent with an expiration of 0 and headers that read like a worker's refusal, long expired.
    topology = Topology(amqp_prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare(channel)
        forged = {REASON_HEADER: "spoofed", EXPIRES_HEADER: "2000-01-01T00:00:00+00:00"}
        message = aio_pika.Message(
            b"batch", type=SUBMISSION_TYPE, message_id="b-0", expiration=0, headers=forged
        )
        await channel.default_exchange.publish(message, routing_key=topology.batch_queue)
    dead_queue = topology.dead_queue(topology.batch_queue)

    async def set_aside() -> bool:
        return await queue_depth(amqp_url, dead_queue) == 1

    await eventually(set_aside, within_s=30, every_s=0.5)

    first = await sanadctl(amqp_url, amqp_prefix, "list", "--queue", "batch")
    second = await sanadctl(amqp_url, amqp_prefix, "list", "--queue", "batch")

    for code, out, err in (first, second):
        assert code == 0, err
        [shown], _ = listed(out)
        assert (shown["message_id"], shown["reason"], shown["expires_at"]) == (
            "b-0",
            "broker: expired",
            "",
        )
    assert [m.message_id for m in await drain(amqp_url, dead_queue)] == ["b-0"]


async def test_a_letter_handed_back_again_and_again_stays_in_its_dead_letter_queue(
    amqp_url: str, amqp_prefix: str
) -> None:
    # As declared on this broker: RabbitMQ 3.x drops a message at its first return under
    # x-delivery-limit -1 (4.x's "unlimited"), and 4.x at its 21st without it.
    await dead_letter_three(amqp_url, amqp_prefix)
    topology = Topology(amqp_prefix)
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        dead = await channel.get_queue(topology.dead_queue(topology.ingest_queue), ensure=False)
        for _ in range(25):
            letter = await dead.get(no_ack=False)
            await letter.nack(requeue=True)

    kept = await drain(amqp_url, topology.dead_queue(topology.ingest_queue))
    assert sorted(m.message_id for m in kept) == ["m-0", "m-1", "m-2"]
