"""sanadctl dead-letters: list what a worker set aside, replay it once the cause is fixed, and
drop the letters that will never be processed.

Each command makes one pass over the dead-letter queue (sanad.amqp.dead_letter_pass says why a
pass and not a peek). Only the ingest queue's letters are replayed. A batch submission was
authenticated by the broker as its submitter's user; a copy published by an operator cannot
carry that, so the submitter sends the batch again (the same batch id is answered the same).
"""

import argparse
import asyncio
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

from sanad.amqp.connecting import CONNECT_TIMEOUT_S
from sanad.amqp.dead_letter_pass import Action, Pass, pass_over
from sanad.amqp.dead_letters import DeadLetter
from sanad.amqp.handling import BROKER_ERRORS
from sanad.cli.arguments import not_empty
from sanad.cli.broker import DEFAULT_AMQP_URL, NOT_AN_AMQP_URL, failure, remedy, where
from sanad.cli.client import Client
from sanad.cli.output import Printer

QUEUES = ("ingest", "batch")
REPLAYABLE = ("ingest",)
# Deadline of each step of a pass (connecting, taking a letter, a confirmed publish, an ack):
# the processes' own bound on a broker operation.
STEP_TIMEOUT_S = CONNECT_TIMEOUT_S


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `dead-letters list`, `dead-letters replay` and `dead-letters drop`."""
    letters = commands.add_parser(
        "dead-letters", help="messages the workers set aside, through RabbitMQ"
    )
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every dead letter of a work queue, oldest first")
    replay = actions.add_parser(
        "replay", help="send dead letters back to their work queue (ingest only)"
    )
    drop = actions.add_parser(
        "drop", help="remove the dead letters of a reason or message id for good"
    )
    for action in (listing, replay, drop):
        action.add_argument("--queue", choices=QUEUES, default="ingest", help="default ingest")
        action.add_argument("--amqp-url", help="RabbitMQ URL (env SANAD_AMQP_URL)")
    listing.add_argument("--limit", type=_count, default=100, help="letters shown (default 100)")
    replay.add_argument(
        "--reason",
        action="append",
        default=[],
        type=not_empty,
        help="replay only letters with this reason (repeatable; default every letter)",
    )
    replay.add_argument("--limit", type=_count, help="replay at most this many")
    drop.add_argument(
        "--reason",
        action="append",
        default=[],
        type=not_empty,
        help="drop letters with this reason (repeatable)",
    )
    drop.add_argument(
        "--id",
        action="append",
        default=[],
        type=not_empty,
        dest="message_ids",
        metavar="MESSAGE_ID",
        help="drop the letter with this message id (each option repeatable; with both, a"
        " letter must match a --reason and an --id; at least one is required)",
    )
    listing.set_defaults(handler=list_letters)
    replay.set_defaults(handler=replay_letters)
    drop.set_defaults(handler=drop_letters)


def list_letters(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Print the oldest dead letters of a work queue and how many there are of each reason (with
    --json, a letter a line, then one line of the counts); the queue is left as it was. Only the
    letters shown are held, however long the queue."""
    del client
    if (url := _url(args, printer)) is None:
        return 2
    limit = args.limit
    shown: list[DeadLetter] = []

    def keep(letter: DeadLetter) -> Action:
        if len(shown) < limit:
            shown.append(letter)
        return Action.KEEP

    done = Pass()
    try:
        _run(args, url, keep, done)
    except BROKER_ERRORS as error:
        return _failed(printer, args, error, done)
    total = done.kept.total()
    if printer.as_json:
        # One line per letter shown, then the counts (as a list's next_page_token comes last):
        # with --limit a script sees how many more wait, and an empty queue prints its zero.
        for letter in shown:
            printer.json(asdict(letter))
        printer.json(
            {"total": total, "shown": len(shown), "reasons": dict(sorted(done.kept.items()))}
        )
        return 0
    printer.table(
        f"dead letters of {args.queue} ({total}"
        + (f", the oldest {len(shown)} shown)" if len(shown) < total else ")"),
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
    if total:
        printer.fields([("reasons", _by_reason(done.kept))])
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
    if (url := _url(args, printer)) is None:
        return 2
    done = Pass()
    try:
        _run(args, url, _chooser(set(args.reason), args.limit), done)
    except BROKER_ERRORS as error:
        return _failed(printer, args, error, done)
    replayed, kept = done.replayed.total(), done.kept.total()
    # Counted by reason, as drop and list count them.
    if printer.as_json:
        printer.json(
            {"replayed": replayed, "kept": kept, "reasons": dict(sorted(done.replayed.items()))}
        )
    else:
        printer.fields(
            [("replayed", replayed), ("kept", kept), ("reasons", _by_reason(done.replayed))]
        )
    return 0


def drop_letters(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Remove the dead letters of the given reasons and/or message ids for good; the others
    stay, in order."""
    del client
    if not args.reason and not args.message_ids:
        printer.error(
            "dead-letters drop needs --reason or --id: it never drops every letter"
            " (see `sanadctl dead-letters list` for the reasons and ids)"
        )
        return 2
    if (url := _url(args, printer)) is None:
        return 2
    reasons, ids = set(args.reason), set(args.message_ids)

    def chosen(letter: DeadLetter) -> Action:
        matches = (not reasons or letter.reason in reasons) and (
            not ids or letter.message_id in ids
        )
        return Action.DROP if matches else Action.KEEP

    done = Pass()
    try:
        _run(args, url, chosen, done)
    except BROKER_ERRORS as error:
        return _failed(printer, args, error, done)
    dropped, kept = done.dropped.total(), done.kept.total()
    if printer.as_json:
        printer.json(
            {"dropped": dropped, "kept": kept, "reasons": dict(sorted(done.dropped.items()))}
        )
    else:
        printer.fields(
            [("dropped", dropped), ("kept", kept), ("reasons", _by_reason(done.dropped))]
        )
    return 0


def _chooser(reasons: set[str], limit: int | None) -> Callable[[DeadLetter], Action]:
    """A choose() that replays letters of these reasons (all when none given), up to limit."""
    taken = 0

    def chosen(letter: DeadLetter) -> Action:
        nonlocal taken
        if reasons and letter.reason not in reasons:
            return Action.KEEP
        if limit is not None and taken >= limit:
            return Action.KEEP
        taken += 1
        return Action.REPLAY

    return chosen


def _by_reason(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "-"


def _url(args: argparse.Namespace, printer: Printer) -> str | None:
    """The broker's URL (--amqp-url, else SANAD_AMQP_URL), or None once a URL that names no
    broker is said to be one, as batch submit and seed say it."""
    url: str = args.amqp_url or os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    if where(url) is None:
        printer.error(NOT_AN_AMQP_URL)
        return None
    return url


def _count(text: str) -> int:
    """An argparse type for a --limit: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _run(
    args: argparse.Namespace, url: str, choose: Callable[[DeadLetter], Action], done: Pass
) -> None:
    prefix = os.environ.get("SANAD_AMQP_PREFIX", "sanad")
    try:
        asyncio.run(pass_over(url, prefix, args.queue, choose, done, timeout_s=STEP_TIMEOUT_S))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the pass over the dead letters of {args.queue} stopped after {_progress(done)};"
            " the letter in hand, if any, stays in the queue"
        ) from None


def _failed(printer: Printer, args: argparse.Namespace, error: Exception, done: Pass) -> int:
    why = failure(error, "a letter")
    if not done.moved and done.failed is None:
        printer.error(f"dead letters of {args.queue} not reached: {why}{remedy(error)}")
        return 1
    text = f"the pass over the dead letters of {args.queue} stopped after {_progress(done)}: {why}"
    if (letter := done.failed) is not None:
        where = "at the back of the queue" if done.failed_kept_at_back else "in the queue"
        named = f"{letter.message_id or 'no message id'}, {letter.reason}"
        text += f"; the letter it failed on ({named}) is kept, {where}"
    printer.error(text)
    return 1


def _progress(done: Pass) -> str:
    letters = "letter" if done.moved == 1 else "letters"
    return (
        f"{done.moved} {letters} ({done.replayed.total()} replayed, {done.kept.total()} kept,"
        f" {done.dropped.total()} dropped)"
    )
