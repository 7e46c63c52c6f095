"""A batch file for `sanadctl batch submit`: CSV or NDJSON rows read and checked, cut into
BatchSubmissions, and the refused rows written back with their reasons."""

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

from sanad.v1 import events_pb2, intake_pb2

COLUMNS = ("request_id", "service_code", "channel", "fee_baisa", "civil_number", "center_id")
# The channel column's values (any case); an empty one is batch.
CHANNELS = ("counter", "mobile", "api", "batch")
# A fee the message can carry (int64); anything else is sent as -1 for the worker to refuse.
FEE = re.compile(r"-?[0-9]{1,18}")


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
