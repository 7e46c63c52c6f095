"""sanadctl batch submit: a CSV or NDJSON file sent as BatchSubmissions, every row answered.

The command reads the file (sanad.cli.batch_file), sends it chunk by chunk and waits for
every answer (sanad.cli.batch_send), prints a summary and writes refused rows with their
reasons to FILE.rejected.csv.
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from aio_pika.exceptions import ChannelNotFoundEntity

from sanad.amqp.batches import batch_id_problem, message_id_problem
from sanad.amqp.handling import BROKER_ERRORS
from sanad.amqp.publisher import refusal
from sanad.amqp.topology import Topology
from sanad.cli.arguments import positive_seconds
from sanad.cli.batch_file import (
    BadFile,
    chunks_of,
    content_id,
    item_of,
    read_numbered,
    value_of,
    write_rejected,
)
from sanad.cli.batch_send import Cut, Unanswered, send, summarise
from sanad.cli.broker import DEFAULT_AMQP_URL, NOT_AN_AMQP_URL, failure, remedy, where
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.v1 import events_pb2

MAX_CHUNK = 5000


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `batch submit`."""
    batch = commands.add_parser("batch", help="batch submissions through RabbitMQ")
    actions = batch.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="submit a CSV or NDJSON file of transactions")
    submit.add_argument("file", type=Path, help="CSV with a header row, or NDJSON (.ndjson/.jsonl)")
    submit.add_argument("--center", default="", help="centre id for rows without center_id")
    submit.add_argument(
        "--batch-id",
        help="id of this batch; resending it answers the same (default: from the file's"
        " content and --center)",
    )
    submit.add_argument(
        "--chunk", type=int, default=1000, help=f"rows per message (<= {MAX_CHUNK})"
    )
    submit.add_argument("--amqp-url", help="RabbitMQ URL (env SANAD_AMQP_URL)")
    submit.add_argument(
        "--wait",
        type=positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="longest wait for the broker's confirms and every chunk's answer (default 300)",
    )
    submit.set_defaults(handler=submit_batch)


def submit_batch(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Send the file, wait for every answer, print a summary; 1 when any row was refused or
    the batch could not be sent or answered, 2 when the file or the arguments are bad."""
    del client
    url = args.amqp_url or os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    try:
        rows, lines = _rows_to_send(args, url)
        batch_id, batches = _chunked(args, rows)
    except BadFile as error:
        printer.error(str(error))
        return 2
    if anonymous := sum(1 for row in rows if not value_of(row, "request_id")):
        # The file's batch id keeps a resend of this very file from storing twice; a corrected
        # file is another batch, and only a request id tells a row in it from a new one.
        printer.warning(
            f"{anonymous} of {len(rows)} rows have no request_id: sent again in a corrected file"
            " they are stored again; give every row a request_id to make a resend safe"
        )
    prefix = os.environ.get("SANAD_AMQP_PREFIX", "sanad")
    try:
        results = asyncio.run(
            send(url, prefix, batches, args.wait, sys.stderr, first_alone=len(batches) > 1)
        )
    except (Unanswered, Cut, *BROKER_ERRORS) as error:
        printer.error(_unsent(error, batch_id, args.chunk, url, prefix))
        return 1
    except KeyboardInterrupt:
        # A resend needs this batch id and this --chunk to be answered the same.
        raise KeyboardInterrupt(f"batch {batch_id}: {_resend_hint(batch_id, args.chunk)}") from None
    if len(results) < len(batches):
        printer.error(
            f"batch {batch_id}: its first chunk was refused, so the other"
            f" {len(batches) - 1} were not sent: {results[0].refused_reason}"
        )
    outcome = summarise(results, batches)
    summary: dict[str, Any] = {
        "batch_id": batch_id,
        "rows": len(rows),
        "accepted": outcome.accepted,
        "rejected": len(outcome.rejected),
        "rejected_file": _rejected_file(
            args.file, rows, lines, outcome.rejected, printer, answered=not outcome.refused
        ),
    }
    if printer.as_json:
        refused = [f"{chunk_id}: {reason}" for chunk_id, reason in outcome.refused]
        printer.json({**summary, "refused_chunks": refused})
    else:
        printer.fields(list(summary.items()))
        printer.table("refused_chunks", [list(chunk) for chunk in outcome.refused])
    return 1 if outcome.rejected or outcome.refused else 0


def _rejected_file(
    path: Path,
    rows: list[dict[str, str]],
    lines: list[int],
    rejected: list[tuple[int, str]],
    printer: Printer,
    *,
    answered: bool,
) -> str:
    """FILE.rejected.csv written with the refused rows, its name; with none refused, one left
    from an earlier send of the file is removed when every row was `answered` (it named rows
    this send stored), and kept when a chunk was refused whole (its rows are still not
    stored), and the name is empty, as it is when the file cannot be written."""
    rejected_path = path.with_name(path.name + ".rejected.csv")
    try:
        if not rejected:
            if answered:
                rejected_path.unlink(missing_ok=True)
            return ""
        write_rejected(rejected_path, rows, lines, rejected)
    except OSError as error:
        printer.error(f"{rejected_path}: {error.strerror or error}")
        return ""
    return str(rejected_path)


def _rows_to_send(args: argparse.Namespace, url: str) -> tuple[list[dict[str, str]], list[int]]:
    """The file's rows and their lines, once the arguments are known good; BadFile says what
    is wrong."""
    if not 1 <= args.chunk <= MAX_CHUNK:
        raise BadFile(f"--chunk must be 1 to {MAX_CHUNK}")
    if where(url) is None:
        raise BadFile(NOT_AN_AMQP_URL)
    return read_numbered(args.file)


def _chunked(
    args: argparse.Namespace, rows: list[dict[str, str]]
) -> tuple[str, list[events_pb2.BatchSubmission]]:
    """The batch id and the rows as chunks; BadFile when a chunk id cannot be sent or the
    worker would refuse it (pamqp's TypeError on a message id over 255 bytes, before)."""
    # By default the file's own id: sent again, it is the same batch (DESIGN §5.3).
    batch_id = args.batch_id or content_id(args.center, map(item_of, rows))
    batches = chunks_of(rows, batch_id, args.center, args.chunk)
    # The last chunk's id is the longest.
    last = batches[-1].batch_id if batches else ""
    if batches and (problem := batch_id_problem(last) or message_id_problem(last)):
        suffix = last.removeprefix(batch_id)
        raise BadFile(
            f"--batch-id: chunk ids are the batch id and '/<n>' (here up to {suffix!r}),"
            f" and {problem}"
        )
    return batch_id, batches


def _resend_hint(batch_id: str, chunk: int) -> str:
    """How to send the file again without storing any row twice."""
    return (
        f"send the file again with --batch-id {batch_id} --chunk {chunk}, and chunks already"
        " answered are answered the same, never stored twice"
    )


def _unsent(error: Exception, batch_id: str, chunk: int, url: str, prefix: str) -> str:
    """Why the batch was not (wholly) answered, and what to do, without credentials."""
    if isinstance(error, Unanswered):
        return f"batch {batch_id}: {error}. Nothing is lost: {_resend_hint(batch_id, chunk)}"
    if isinstance(error, Cut):
        # Chunks the broker confirmed (or took before it failed) will be stored: a resend
        # under another batch id would store them again.
        cause = error.cause
        # aiormq fails a pending confirm with a bare CancelledError when its connection closes.
        reason = (
            failure(cause, "the batch", url) if isinstance(cause, Exception) else "connection lost"
        )
        return (
            f"batch {batch_id}: RabbitMQ at {where(url)} failed after confirming"
            f" {error.confirmed} of {error.total} chunks: {reason}. Nothing is lost:"
            f" {_resend_hint(batch_id, chunk)}"
        )
    if isinstance(error, ChannelNotFoundEntity):
        return (
            f"no batch exchange {Topology(prefix).batch_exchange!r} on the broker: check"
            " SANAD_AMQP_PREFIX, and that the workers have started once"
        )
    reason = failure(error, "the batch", url) + remedy(error)
    if refusal(error) is not None:
        reason = f"{reason}. {_resend_hint(batch_id, chunk)}"
    return f"batch {batch_id} not sent: RabbitMQ at {where(url)}: {reason}"
