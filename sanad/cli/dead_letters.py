"""sanadctl dead-letters: list what a worker set aside, and replay it once the cause is fixed.

Both commands make one pass over the dead-letter queue (sanad.amqp.dead_letters says why a pass
and not a peek). Only the ingest queue's letters are replayed. A batch submission was
authenticated by the broker as its submitter's user; a copy published by an operator cannot
carry that, so the submitter sends the batch again (the same batch id is answered the same).
"""

import argparse
import asyncio
import os
from collections.abc import Callable
from dataclasses import asdict

from sanad.amqp.dead_letters import DeadLetter, Pass, pass_over
from sanad.amqp.handling import BROKER_ERRORS
from sanad.cli.broker import DEFAULT_AMQP_URL, failure
from sanad.cli.client import Client
from sanad.cli.output import Printer

QUEUES = ("ingest", "batch")
REPLAYABLE = ("ingest",)


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


def list_letters(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Print the dead letters of a work queue, oldest first; the queue is left as it was."""
    del client
    done = Pass()
    try:
        _run(args, lambda letter: False, done)
    except BROKER_ERRORS as error:
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
                f"expires {n.expires_at}" if n.expires_at else "no expiry",
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
    except BROKER_ERRORS as error:
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
    why = failure(error, "a letter")
    if moved:
        printer.error(
            f"the pass over the dead letters of {args.queue} stopped after {moved} letters"
            f" ({len(done.replayed)} replayed): {why}"
        )
    else:
        printer.error(f"dead letters of {args.queue} not reached: {why}")
    return 1
