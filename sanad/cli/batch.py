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
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aio_pika

from sanad.amqp.topology import BATCH, CONTENT_TYPE, Topology
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.security.batch_users import broker_user
from sanad.v1 import common_pb2, events_pb2, intake_pb2

COLUMNS = ("request_id", "service_code", "channel", "fee_baisa", "civil_number", "center_id")
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MAX_CHUNK = 5000


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


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header row) or NDJSON file, values as strings."""
    with path.open(encoding="utf-8") as handle:
        if path.suffix.lower() in (".ndjson", ".jsonl"):
            return [
                {k: str(v) for k, v in json.loads(line).items()} for line in handle if line.strip()
            ]
        return [dict(row) for row in csv.DictReader(handle)]


def item_of(row: dict[str, str]) -> intake_pb2.SubmitTransactionRequest:
    """One row as a submission; a bad number or channel is left for the worker to name."""
    channel = f"CHANNEL_{(row.get('channel') or 'batch').strip().upper()}"
    fee_text = (row.get("fee_baisa") or "").strip()
    return intake_pb2.SubmitTransactionRequest(
        request_id=row.get("request_id", ""),
        center_id=row.get("center_id") or "",
        service_code=row.get("service_code", ""),
        channel=channel
        if channel in common_pb2.Channel.DESCRIPTOR.values_by_name
        else "CHANNEL_UNSPECIFIED",
        fee_baisa=int(fee_text) if fee_text.lstrip("-").isdigit() else -1,
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


async def send(
    url: str,
    prefix: str,
    batches: Sequence[events_pb2.BatchSubmission],
    wait_s: float,
    progress: TextIO | None = None,
) -> list[events_pb2.BatchResult]:
    """Publish each batch with confirms and wait for every BatchResult, in order.

    Every message carries the connection's user as `user_id`, which the broker validates and
    the batch worker checks against the batch's centre.
    """
    user = broker_user(url)
    # A plain connection: its reply queue is server-named (amq.gen-*), which is what a batch
    # submitter's broker permissions allow; an exclusive queue would not survive a reconnect
    # anyway, and resending the same batch ids returns the stored answers.
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        replies = await channel.declare_queue("", exclusive=True, auto_delete=True)
        exchange = await channel.get_exchange(Topology(prefix).batch_exchange)
        answers: dict[str, events_pb2.BatchResult] = {}
        arrived = asyncio.Event()

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                result = events_pb2.BatchResult()
                result.ParseFromString(message.body)
                answers[message.correlation_id or ""] = result
                arrived.set()

        await replies.consume(on_reply)
        correlations = []
        for batch in batches:
            correlation = uuid.uuid4().hex
            correlations.append(correlation)
            body = batch.SerializeToString()
            message = aio_pika.Message(
                body,
                content_type=CONTENT_TYPE,
                type=batch.DESCRIPTOR.full_name,
                message_id=batch.batch_id,
                correlation_id=correlation,
                reply_to=replies.name,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=user,
            )
            await exchange.publish(message, routing_key=BATCH, mandatory=True)
        sizes = dict(zip(correlations, (_size(b) for b in batches), strict=True))

        async def until_done() -> None:
            while True:
                if progress is not None:
                    done = sum(n for c, n in sizes.items() if c in answers)
                    _draw(progress, done, sum(sizes.values()))
                if all(c in answers for c in correlations):
                    return
                arrived.clear()
                await arrived.wait()

        await asyncio.wait_for(until_done(), wait_s)
        if progress is not None:
            progress.write("\n")
        return [answers[c] for c in correlations]


def _size(batch: events_pb2.BatchSubmission) -> int:
    return len(batch.items) + len(batch.history_items)


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
    """Send the file, wait for every answer, print a summary; 1 when any row was refused."""
    del client
    if not 1 <= args.chunk <= MAX_CHUNK:
        printer.error(f"--chunk must be 1 to {MAX_CHUNK}")
        return 2
    rows = read_rows(args.file)
    batch_id = args.batch_id or uuid.uuid4().hex
    url = args.amqp_url or os.environ.get("SANAD_AMQP_URL", DEFAULT_AMQP_URL)
    prefix = os.environ.get("SANAD_AMQP_PREFIX", "sanad")
    batches = chunks_of(rows, batch_id, args.center, args.chunk)
    results = asyncio.run(send(url, prefix, batches, args.wait, sys.stderr))
    outcome = summarise(results, args.chunk)
    rejected_path = args.file.with_name(args.file.name + ".rejected.csv")
    if outcome.rejected:
        write_rejected(rejected_path, rows, outcome.rejected)
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
