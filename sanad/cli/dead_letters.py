"""sanadctl dead-letters: list what a worker set aside, and replay it once the cause is fixed.

Taking a message off a queue and handing it back counts as a delivery (quorum queues drop a
message at their delivery limit, 20 by default since RabbitMQ 4.0) and may move it. So both
commands pass once over the whole dead-letter queue, in order, and publish every message again,
confirmed, before acking it: at the back of the dead-letter queue when it stays, into its work
queue when it is replayed. The queue keeps its order (a letter set aside during the pass lands
among the others). A command stopped midway loses nothing: a message is then in both places at
worst, and the workers store a transaction once however often it arrives. A replay checks that
the work queue exists before it takes any letter.

Only the ingest queue's letters are replayed. A batch submission was authenticated by the
broker as its submitter's user; a copy published by an operator cannot carry that, so the
submitter sends the batch again (the same batch id is answered the same).
"""

import argparse
import asyncio
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from sanad.amqp.consumer import carried_headers, republished
from sanad.amqp.topology import DETAIL_HEADER, REASON_HEADER, RETRIES_HEADER, Topology
from sanad.cli.batch import DEFAULT_AMQP_URL
from sanad.cli.client import Client
from sanad.cli.output import Printer

QUEUES = ("ingest", "batch")
REPLAYABLE = ("ingest",)
REPLAYS_HEADER = "x-sanad-replays"
# Headers of a dead letter that do not belong on its replayed copy (with the broker's
# x-first-death-* and x-last-death-*; a quorum queue's delivery count is its own).
_DEATH_HEADERS = (
    REASON_HEADER,
    DETAIL_HEADER,
    RETRIES_HEADER,
    "x-sanad-queue",
    "x-death",
    "x-delivery-count",
)
# What stops a pass midway: the broker unreachable, a queue missing, the channel closed.
_BROKER_ERRORS = (AMQPError, OSError, ChannelInvalidStateError)
_DEATH_PREFIXES = ("x-first-death-", "x-last-death-")


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter queue, as an operator reads it."""

    position: int
    reason: str
    detail: str
    message_type: str
    message_id: str
    replays: int


@dataclass
class Pass:
    """What one pass over a dead-letter queue kept and replayed, in queue order, so far."""

    kept: list[DeadLetter] = field(default_factory=list)
    replayed: list[DeadLetter] = field(default_factory=list)


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `dead-letters list` and `dead-letters replay`."""
    letters = commands.add_parser(
        "dead-letters", help="messages the workers set aside, through RabbitMQ"
    )
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dead letter of a work queue, oldest first")
    replay = actions.add_parser(
        "replay", help="send dead letters back to their work queue (ingest only)"
    )
    for action in (listing, replay):
        action.add_argument("--queue", choices=QUEUES, default="ingest", help="default ingest")
        action.add_argument("--amqp-url", help="RabbitMQ URL (env SANAD_AMQP_URL)")
    listing.add_argument("--limit", type=int, default=100, help="letters shown (default 100)")
    replay.add_argument(
        "--reason",
        action="append",
        default=[],
        help="replay only letters with this reason (repeatable; default every letter)",
    )
    replay.add_argument("--limit", type=int, help="replay at most this many")
    listing.set_defaults(handler=list_letters)
    replay.set_defaults(handler=replay_letters)


def letter_of(position: int, message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead letter says of itself; one the broker set aside names the broker's reason."""
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if not reason:
        deaths = headers.get("x-death")
        first = deaths[0] if isinstance(deaths, list) and deaths else {}
        cause = first.get("reason", "unknown") if isinstance(first, dict) else "unknown"
        reason = f"broker: {_text(cause)}"
    replays = headers.get(REPLAYS_HEADER)
    return DeadLetter(
        position=position,
        reason=_text(reason),
        detail=_text(headers.get(DETAIL_HEADER, "")),
        message_type=message.type or "",
        message_id=message.message_id or "",
        replays=replays if isinstance(replays, int) else 0,
    )


def replayed_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as its work queue first received it, counting this replay."""
    headers = {
        name: value
        for name, value in carried_headers(message).items()
        if name not in _DEATH_HEADERS and not name.startswith(_DEATH_PREFIXES)
    }
    replays = headers.get(REPLAYS_HEADER)
    headers[REPLAYS_HEADER] = (replays if isinstance(replays, int) else 0) + 1
    return republished(message, headers)


async def pass_over(
    url: str, prefix: str, queue: str, replay: Callable[[DeadLetter], bool], done: Pass
) -> None:
    """One pass over the dead-letter queue of work queue `queue` (ingest or batch): each letter
    for which replay() is true goes back to the work queue, every other to the queue's back.
    `done` shows what was kept and replayed, also when the pass stops midway."""
    work = f"{prefix}.{queue}"
    dead_name = Topology(prefix).dead_queue(work)
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        dead = await channel.declare_queue(dead_name, passive=True)
        await channel.declare_queue(work, passive=True)
        waiting = dead.declaration_result.message_count or 0
        for position in range(waiting):
            message = await dead.get(no_ack=False, fail=False)
            if message is None:  # fewer than counted: taken by someone else meanwhile
                break
            letter = letter_of(position, message)
            back = replay(letter)
            copy = (
                replayed_copy(message) if back else republished(message, carried_headers(message))
            )
            destination = work if back else dead_name
            await channel.default_exchange.publish(copy, routing_key=destination, mandatory=True)
            await message.ack()
            (done.replayed if back else done.kept).append(letter)


def list_letters(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Print the dead letters of a work queue, oldest first; the queue is left as it was."""
    del client
    done = Pass()
    try:
        _run(args, lambda letter: False, done)
    except _BROKER_ERRORS as error:
        return _failed(printer, args, error, done)
    letters = done.kept
    shown = letters[: max(args.limit, 0)]
    if printer.as_json:
        for letter in shown:
            printer.json(asdict(letter))
        return 0
    printer.table(
        f"dead letters of {args.queue} ({len(letters)})",
        [
            [
                str(n.position),
                n.reason,
                n.message_type,
                n.message_id,
                f"replays {n.replays}",
                n.detail,
            ]
            for n in shown
        ],
    )
    return 0


def replay_letters(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Send the chosen dead letters back to their work queue; the others stay, in order."""
    del client
    if args.queue not in REPLAYABLE:
        printer.error(
            f"dead letters of {args.queue} are not replayed: a batch carries its submitter's"
            " broker identity; the submitter sends it again with the same batch id"
        )
        return 2
    done = Pass()
    try:
        _run(args, _chooser(set(args.reason), args.limit), done)
    except _BROKER_ERRORS as error:
        return _failed(printer, args, error, done)
    reasons = sorted({letter.reason for letter in done.replayed})
    if printer.as_json:
        printer.json({"replayed": len(done.replayed), "kept": len(done.kept), "reasons": reasons})
    else:
        printer.fields(
            [
                ("replayed", len(done.replayed)),
                ("kept", len(done.kept)),
                ("reasons", ", ".join(reasons) or "-"),
            ]
        )
    return 0


def _chooser(reasons: set[str], limit: int | None) -> Callable[[DeadLetter], bool]:
    """A replay() that takes letters of these reasons (all when none given), up to limit."""
    taken = 0

    def chosen(letter: DeadLetter) -> bool:
        nonlocal taken
        if reasons and letter.reason not in reasons:
            return False
        if limit is not None and taken >= limit:
            return False
        taken += 1
        return True

    return chosen


def _run(args: argparse.Namespace, replay: Callable[[DeadLetter], bool], done: Pass) -> None:
    url = args.amqp_url or os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    prefix = os.environ.get("SANAD_AMQP_PREFIX", "sanad")
    asyncio.run(pass_over(url, prefix, args.queue, replay, done))


def _failed(printer: Printer, args: argparse.Namespace, error: Exception, done: Pass) -> int:
    moved = len(done.kept) + len(done.replayed)
    if moved:
        printer.error(
            f"the pass over the dead letters of {args.queue} stopped after {moved} letters"
            f" ({len(done.replayed)} replayed): {error}"
        )
    else:
        printer.error(f"dead letters of {args.queue} not reached: {error}")
    return 1


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
