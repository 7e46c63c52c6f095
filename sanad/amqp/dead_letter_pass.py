"""A pass over a dead-letter queue: each letter taken once, in order, kept, replayed or dropped.

Taking a message off a queue and handing it back unacknowledged counts as a delivery (quorum
queues drop a message at their delivery limit, 20 by default since RabbitMQ 4.0, and a
dead-letter queue has no dead-letter exchange of its own), and may move it. So a pass goes once
over the whole dead-letter queue, in order, and publishes every letter it moves again,
confirmed, before acking it: at the back of the dead-letter queue when it stays, into its work
queue when it is replayed; a dropped letter is only acked. The queue keeps its order (a letter
set aside during the pass lands among the others). A pass checks that the work queue exists
before it takes any letter.

A replay the broker refuses (its work queue is full or has no leader) puts that letter back at
the end of the dead-letter queue, confirmed, then acks it and stops: however often a replay
fails, the letter is never handed back unacknowledged, so no delivery limit is ever reached.
Only when that publish fails too is the letter handed back (nack), and the pass stops.

Every step has a deadline (a broker under a memory or disk alarm takes publishes and never
confirms them). A pass stopped midway loses nothing: a letter is then in two places at worst,
and the workers store a transaction once however often it arrives.
"""

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from sanad.amqp.connecting import CONNECT_TIMEOUT_S, connect
from sanad.amqp.dead_letters import DeadLetter, kept_copy, letter_of, replayed_copy
from sanad.amqp.handling import BROKER_ERRORS
from sanad.amqp.properties import install_lenient_decoding
from sanad.amqp.topology import Topology

T = TypeVar("T")


class Action(Enum):
    """What a pass does with one letter."""

    KEEP = "keep"  # publish it again at the back of its dead-letter queue
    REPLAY = "replay"  # publish it into its work queue
    DROP = "drop"  # ack it: gone for good


@dataclass
class Pass:
    """What one pass has done so far, letters counted by reason (a pass may cross millions of
    letters: it holds on to none), also when it stopped midway."""

    kept: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    # The letter whose move failed and stopped the pass, and whether it then went to the back
    # of its queue (published again, confirmed) rather than back to the head, unacknowledged.
    failed: DeadLetter | None = None
    failed_kept_at_back: bool = False

    @property
    def moved(self) -> int:
        """Letters kept, replayed or dropped."""
        return self.kept.total() + self.replayed.total() + self.dropped.total()


async def pass_over(
    url: str,
    prefix: str,
    queue: str,
    choose: Callable[[DeadLetter], Action],
    done: Pass,
    *,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """One pass over the dead-letter queue of work queue `queue` (ingest or batch), doing with
    each letter what choose() says. `done` shows what the pass did, also when it stops midway.
    TimeoutError, saying what, when the broker has not answered, confirmed a publish or taken
    an acknowledgement within timeout_s."""
    # A letter with properties the client cannot decode (one the broker set aside) would close
    # the connection at every pass; its copies go without them (see republished).
    install_lenient_decoding()
    work = f"{prefix}.{queue}"
    dead_name = Topology(prefix).dead_queue(work)
    async with await connect(url, timeout_s) as connection:
        channel, dead, waiting = await _bounded(
            _open(connection, work, dead_name), timeout_s, "did not answer"
        )
        mover = _Mover(channel, work, dead_name, timeout_s, done)
        for position in range(waiting):
            taking = dead.get(no_ack=False, fail=False, timeout=None)
            message = await _bounded(taking, timeout_s, "did not answer")
            if message is None:  # fewer than counted: taken by someone else meanwhile
                break
            letter = letter_of(position, message, work)
            await mover.move(message, letter, choose(letter))


async def _open(
    connection: AbstractConnection, work: str, dead_name: str
) -> tuple[AbstractChannel, AbstractQueue, int]:
    """A confirmed channel, the dead-letter queue and how many letters it holds; a missing
    work queue fails here, before any letter is taken."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    dead = await channel.declare_queue(dead_name, passive=True)
    await channel.declare_queue(work, passive=True)
    return channel, dead, dead.declaration_result.message_count or 0


class _Mover:
    """Moves the letters of one pass where choose() says, each step within timeout_s."""

    def __init__(
        self, channel: AbstractChannel, work: str, dead_name: str, timeout_s: float, done: Pass
    ) -> None:
        self.channel = channel
        self.work = work
        self.dead_name = dead_name
        self.timeout_s = timeout_s
        self.done = done

    async def move(
        self, message: AbstractIncomingMessage, letter: DeadLetter, action: Action
    ) -> None:
        """Keep, replay or drop one letter; a failed move stops the pass (see the module)."""
        if action is Action.DROP:
            await self._ack(message)
            self.done.dropped[letter.reason] += 1
            return
        replay = action is Action.REPLAY
        copy = replayed_copy(message, self.work) if replay else kept_copy(message, self.work)
        try:
            await self._publish(copy, self.work if replay else self.dead_name)
        except BROKER_ERRORS:
            self.done.failed = letter
            self.done.failed_kept_at_back = replay and await self._put_back(message)
            if not self.done.failed_kept_at_back:
                await self._hand_back(message)
            raise
        await self._ack(message)
        (self.done.replayed if replay else self.done.kept)[letter.reason] += 1

    async def _put_back(self, message: AbstractIncomingMessage) -> bool:
        """Publish the letter again at the back of its queue and ack it; whether it is there."""
        try:
            await self._publish(kept_copy(message, self.work), self.dead_name)
        except BROKER_ERRORS:
            return False
        # Unacknowledged, it returns to the head as well when the connection closes: twice.
        with contextlib.suppress(*BROKER_ERRORS):
            await self._ack(message)
        return True

    async def _hand_back(self, message: AbstractIncomingMessage) -> None:
        """Return the letter unacknowledged (one delivery, on a quorum queue); a connection
        that cannot say so returns it when it closes."""
        with contextlib.suppress(*BROKER_ERRORS):
            await _bounded(message.nack(requeue=True), self.timeout_s, "did not answer")

    async def _publish(self, copy: aio_pika.Message, queue: str) -> None:
        publishing = self.channel.default_exchange.publish(copy, routing_key=queue, mandatory=True)
        await _bounded(
            publishing,
            self.timeout_s,
            "confirmed no publish",
            ": a memory or disk alarm blocks publishers until it clears",
        )

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        await _bounded(message.ack(), self.timeout_s, "took no acknowledgement")


async def _bounded(step: Awaitable[T], timeout_s: float, what: str, why: str = "") -> T:
    """The step's result, or a TimeoutError that says what RabbitMQ did not do in time."""
    try:
        async with asyncio.timeout(timeout_s):
            return await step
    except TimeoutError:
        raise TimeoutError(f"RabbitMQ {what} within {timeout_s:g} s{why}") from None
