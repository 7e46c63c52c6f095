"""sanadctl batch submit: a CSV or NDJSON file sent as BatchSubmissions, every row answered.

Each chunk of rows is one BatchSubmission published to the batch exchange with
reply_to (an exclusive, auto-delete reply queue) and correlation_id; the
command waits for each BatchResult, prints a summary and writes refused rows
with their reasons to FILE.rejected.csv.
"""

import argparse
import asyncio
import csv
import json
import os
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aio_pika.exceptions import ChannelNotFoundEntity

from sanad.amqp.batches import BatchClient, item_count
from sanad.amqp.connecting import CONNECT_TIMEOUT_S
from sanad.amqp.handling import BROKER_ERRORS
from sanad.amqp.publisher import refusal
from sanad.amqp.topology import Topology
from sanad.cli.broker import failure, where
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.v1 import events_pb2, intake_pb2

COLUMNS = ("request_id", "service_code", "channel", "fee_baisa", "civil_number", "center_id")
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MAX_CHUNK = 5000
# The channel column's values (any case); an empty one is batch.
CHANNELS = ("counter", "mobile", "api", "batch")
# A fee the message can carry (int64); anything else is sent as -1 for the worker to refuse.
FEE = re.compile(r"-?[0-9]{1,18}")


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `batch submit`."""
    batch = commands.add_parser("batch", help="batch submissions through RabbitMQ")
    actions = batch.add_subparsers(dest="action", required=True)
    submit = actions.add_parser("submit", help="submit a CSV or NDJSON file of transactions")
    submit.add_argument("file", type=Path, help="CSV with a header row, or NDJSON (.ndjson/.jsonl)")
    submit.add_argument("--center", default="", help="centre id for rows without center_id")
    submit.add_argument("--batch-id", help="id of this batch; resending it answers the same")
    submit.add_argument(
        "--chunk", type=int, default=1000, help=f"rows per message (<= {MAX_CHUNK})"
    )
    submit.add_argument("--amqp-url", help="RabbitMQ URL (env SANAD_AMQP_URL)")
    submit.add_argument("--wait", type=float, default=300.0, metavar="SECONDS")
    submit.set_defaults(handler=submit_batch)


@dataclass
class Outcome:
    """What the workers answered for a whole file."""

    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class BadFile(Exception):
    """A batch file that cannot be read as rows; the message names the file and the line."""


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header row) or NDJSON file, values as strings; BadFile when unreadable
    or when a row's channel is none of CHANNELS."""
    try:
        # utf-8-sig: a byte order mark (Excel writes one) is not part of the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() in (".ndjson", ".jsonl"):
                return [
                    _checked(path, number, _ndjson_row(path, number, line))
                    for number, line in enumerate(handle, start=1)
                    if line.strip()
                ]
            # A short row's missing values read as empty, as an empty value would.
            reader = csv.DictReader(handle, restval="")
            try:
                # line_num: the line the row ends on.
                return [_checked(path, reader.line_num, dict(row)) for row in reader]
            except csv.Error as error:
                # line_num counts the lines read before the one that failed.
                raise BadFile(f"{path}, near line {reader.line_num + 1}: {error}") from None
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise BadFile(f"{path}: {error.strerror or error}") from None


def _ndjson_row(path: Path, number: int, line: str) -> dict[str, str]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadFile(f"{path}, line {number}: not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise BadFile(f"{path}, line {number}: not a JSON object")
    return {k: "" if v is None else str(v) for k, v in value.items()}


def _checked(path: Path, line: int, row: dict[str, str]) -> dict[str, str]:
    """The row, if its channel is one the message can carry: an unknown one would go as
    CHANNEL_UNSPECIFIED, which the worker stores as BATCH."""
    channel = (row.get("channel") or "").strip()
    if channel and channel.lower() not in CHANNELS:
        raise BadFile(
            f"{path}, line {line}: channel {channel[:40]!r} is not one of {', '.join(CHANNELS)}"
            " (or empty, for batch)"
        )
    return row


def item_of(row: dict[str, str]) -> intake_pb2.SubmitTransactionRequest:
    """One row (its channel checked by read_rows) as a submission; a bad number is left for
    the worker to name."""
    channel = (row.get("channel") or "batch").strip().lower()
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    fee_text = (row.get("fee_baisa") or "").strip()
    return intake_pb2.SubmitTransactionRequest(
        request_id=row.get("request_id", ""),
        center_id=row.get("center_id") or "",
        service_code=row.get("service_code", ""),
        channel=f"CHANNEL_{channel.upper()}",
        fee_baisa=int(fee_text) if FEE.fullmatch(fee_text) else -1,
        beneficiary_civil_number=row.get("civil_number", ""),
    )


def chunks_of(
    rows: Sequence[dict[str, str]], batch_id: str, center_id: str, size: int
) -> list[events_pb2.BatchSubmission]:
    """The file as BatchSubmissions of `size` rows; chunk n has id batch_id/n."""
    return [
        events_pb2.BatchSubmission(
            batch_id=f"{batch_id}/{start // size}",
            center_id=center_id,
            items=[item_of(row) for row in rows[start : start + size]],
        )
        for start in range(0, len(rows), size)
    ]


class Unanswered(Exception):
    """The wait ended before every batch was answered."""

    def __init__(self, answered: int, total: int, wait_s: float) -> None:
        super().__init__(f"{answered} of {total} chunks answered within {wait_s:g} s")
        self.answered = answered
        self.total = total


async def send(
    url: str,
    prefix: str,
    batches: Sequence[events_pb2.BatchSubmission],
    wait_s: float,
    progress: TextIO | None = None,
    *,
    first_alone: bool = False,
) -> list[events_pb2.BatchResult]:
    """Publish each batch, confirmed, then wait up to wait_s for every BatchResult, in order.

    With first_alone, the first batch is answered before the others are published, and when
    it is refused as a whole its answer alone is returned: the others are not sent. A file
    sent again with its batch id but another --chunk is so refused at its first chunk (other
    content under that id) before a later chunk, whose id is new, could store rows again.

    Raises Unanswered when the wait ends first, TimeoutError when the broker has not answered
    within it, and aio_pika's errors when the broker cannot be reached or has no batch
    exchange under prefix.
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + wait_s
    # Connected within 5 s, or the wait when it is shorter (--wait 0 still connects).
    connect_s = min(wait_s, CONNECT_TIMEOUT_S) if wait_s > 0 else CONNECT_TIMEOUT_S
    async with BatchClient.connect(url, prefix, timeout_s=connect_s) as client:
        answers: list[asyncio.Future[events_pb2.BatchResult]] = []
        if first_alone and batches:
            if progress is not None:
                _draw(progress, 0, sum(item_count(batch) for batch in batches))
            answers.append(await client.publish(batches[0]))
            await asyncio.wait(answers, timeout=max(ends - loop.time(), 0))
            if not answers[0].done():
                raise Unanswered(0, len(batches), wait_s)
            if answers[0].result().refused_reason:
                return [answers[0].result()]
        answers += [await client.publish(batch) for batch in batches[len(answers) :]]
        sizes = {answer: item_count(batch) for answer, batch in zip(answers, batches, strict=True)}
        pending: set[asyncio.Future[events_pb2.BatchResult]] = {
            answer for answer in answers if not answer.done()
        }
        while pending and (left := ends - loop.time()) > 0:
            if progress is not None:
                done = sum(n for answer, n in sizes.items() if answer not in pending)
                _draw(progress, done, sum(sizes.values()))
            _, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
        if progress is not None:
            done = sum(n for answer, n in sizes.items() if answer not in pending)
            _draw(progress, done, sum(sizes.values()))
            progress.write("\n")
        if pending:
            raise Unanswered(len(answers) - len(pending), len(answers), wait_s)
        return [answer.result() for answer in answers]


def _draw(stream: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total if total else width
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows answered")
    stream.flush()


def summarise(results: Sequence[events_pb2.BatchResult], chunk: int) -> Outcome:
    """File-wide row numbers (from 0) of accepted and rejected rows."""
    outcome = Outcome()
    for number, result in enumerate(results):
        if result.refused_reason:
            outcome.refused.append(f"{result.batch_id}: {result.refused_reason}")
            continue
        outcome.accepted += len(result.accepted)
        for item in result.rejected:
            reason = "; ".join(f"{v.field}: {v.description}" for v in item.violations)
            outcome.rejected.append((number * chunk + item.index, reason))
    return outcome


def write_rejected(
    path: Path, rows: Sequence[dict[str, str]], rejected: list[tuple[int, str]]
) -> None:
    """The refused rows with their reasons; civil numbers are masked."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", *COLUMNS, "reason"])
        for number, reason in sorted(rejected):
            row = rows[number]
            civil = row.get("civil_number", "")
            shown = {**row, "civil_number": "*" * max(len(civil) - 3, 0) + civil[-3:]}
            writer.writerow([number, *(shown.get(c, "") for c in COLUMNS), reason])


def submit_batch(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Send the file, wait for every answer, print a summary; 1 when any row was refused or
    the batch could not be sent or answered, 2 when the file or the arguments are bad."""
    del client
    url = args.amqp_url or os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    try:
        rows = _rows_to_send(args, url)
    except BadFile as error:
        printer.error(str(error))
        return 2
    batch_id = args.batch_id or uuid.uuid4().hex
    prefix = os.environ.get("SANAD_AMQP_PREFIX", "sanad")
    batches = chunks_of(rows, batch_id, args.center, args.chunk)
    try:
        results = asyncio.run(
            send(url, prefix, batches, args.wait, sys.stderr, first_alone=len(batches) > 1)
        )
    except (Unanswered, *BROKER_ERRORS) as error:
        printer.error(_unsent(error, batch_id, args.chunk, url, prefix))
        return 1
    except KeyboardInterrupt:
        # Without the random id a resend would store every row again.
        raise KeyboardInterrupt(f"batch {batch_id}: {_resend_hint(batch_id, args.chunk)}") from None
    if len(results) < len(batches):
        printer.error(
            f"batch {batch_id}: its first chunk was refused, so the other"
            f" {len(batches) - 1} were not sent: {results[0].refused_reason}"
        )
    outcome = summarise(results, args.chunk)
    rejected_path = args.file.with_name(args.file.name + ".rejected.csv")
    if outcome.rejected:
        try:
            write_rejected(rejected_path, rows, outcome.rejected)
        except OSError as error:
            printer.error(f"{rejected_path}: {error.strerror or error}")
            rejected_path = Path()
    summary: dict[str, Any] = {
        "batch_id": batch_id,
        "rows": len(rows),
        "accepted": outcome.accepted,
        "rejected": len(outcome.rejected),
        "refused_chunks": outcome.refused,
        "rejected_file": str(rejected_path) if outcome.rejected else "",
    }
    if printer.as_json:
        printer.json(summary)
    else:
        printer.fields(list(summary.items()))
    return 1 if outcome.rejected or outcome.refused else 0


def _rows_to_send(args: argparse.Namespace, url: str) -> list[dict[str, str]]:
    """The file's rows, once the arguments are known good; BadFile says what is wrong."""
    if not 1 <= args.chunk <= MAX_CHUNK:
        raise BadFile(f"--chunk must be 1 to {MAX_CHUNK}")
    if where(url) is None:
        raise BadFile("the RabbitMQ URL is not an amqp:// or amqps:// URL with a host")
    return read_rows(args.file)


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
    if isinstance(error, ChannelNotFoundEntity):
        return (
            f"no batch exchange {Topology(prefix).batch_exchange!r} on the broker: check"
            " SANAD_AMQP_PREFIX, and that the workers have started once"
        )
    reason = failure(error, "the batch")
    if refusal(error) is not None:
        reason = f"{reason}. {_resend_hint(batch_id, chunk)}"
    return f"batch {batch_id} not sent: RabbitMQ at {where(url)}: {reason}"
