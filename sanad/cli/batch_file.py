"""A batch file for `sanadctl batch submit`: CSV or NDJSON rows read and checked, cut into
BatchSubmissions, and the refused rows written back with their reasons."""

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from sanad.domain.privacy import mask
from sanad.v1 import events_pb2, intake_pb2

COLUMNS = ("request_id", "service_code", "channel", "fee_baisa", "civil_number", "center_id")
# The channel column's values (any case); an empty one is batch.
CHANNELS = ("counter", "mobile", "api", "batch")
# A fee the message can carry (int64); read_numbered refuses any other, item_of sends it as -1.
FEE = re.compile(r"-?[0-9]{1,18}")
# What a file's layout puts around a value (`r-1, ROP-VISA`), and all that is trimmed from it.
LAYOUT_BLANKS = " \t"


class BadFile(Exception):
    """A batch file that cannot be read as rows; the message names the file and the line."""


def read_numbered(path: Path) -> tuple[list[dict[str, str]], list[int]]:
    """Rows of a CSV (header row) or NDJSON file, values as strings, and the file line each
    ends on; BadFile when unreadable or empty, when a CSV header names none of COLUMNS, one
    twice or another name (so does an NDJSON key; both in any case), when a row has more values
    than the header has columns, a value under an unnamed one or (NDJSON) a key twice or a
    value that is no string, number or null, when a CSV value runs over lines, or when a row's
    channel is none of CHANNELS or its fee no whole number of baisa."""
    try:
        # utf-8-sig: a byte order mark (Excel writes one) is not part of the first column's name.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() in (".ndjson", ".jsonl"):
                numbered = [
                    (number, _checked(path, number, _ndjson_row(path, number, line)))
                    for number, line in enumerate(handle, start=1)
                    if line.strip()
                ]
            else:
                numbered = _csv_rows(path, handle)
    except UnicodeDecodeError:
        raise BadFile(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise BadFile(f"{path}: {error.strerror or error}") from None
    if not numbered:
        # An empty file (or a header alone) is a mistake: "rows: 0", exit 0, before.
        raise BadFile(f"{path}: no rows to send")
    return [row for _, row in numbered], [number for number, _ in numbered]


def _csv_rows(path: Path, handle: TextIO) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(handle)
    numbered: list[tuple[int, dict[str, str]]] = []
    try:
        # Names as the README writes them (`request_id, service_code, ...`) are the columns:
        # stripped once, here, so that the rows are read by the names the header is checked by,
        # and in any case (a spreadsheet's `Request_ID` was read by no one, and every row went
        # without its request id).
        header = [_column(name.strip()) for name in _first_filled(reader)]
        if header and not set(COLUMNS) & set(header):
            # A semicolon-separated file reads as one column: every row would be refused.
            raise BadFile(
                f"{path}, line {reader.line_num}: the header names none of the columns"
                f" {', '.join(COLUMNS)} (a CSV separated by commas, with a header row)"
            )
        # An unnamed column (a trailing comma) is read by no one; a named one twice, the last
        # value would win.
        if (twice := _repeated(name for name in header if name)) is not None:
            raise BadFile(
                f"{path}, line {reader.line_num}: the header names column {twice[:40]!r} twice"
            )
        _all_read(path, reader.line_num, (name for name in header if name), "column")
        while True:
            start = reader.line_num + 1
            if (values := next(reader, None)) is None:
                break
            line = reader.line_num  # the line the row ends on
            if _filled(values):  # not a blank line, nor one of commas alone (Excel writes those)
                _on_one_line(path, start, line, values)
                numbered.append((line, _checked(path, line, _fitted(path, line, values, header))))
    except csv.Error as error:
        # line_num counts the line that failed too (where a row spans lines, its last).
        raise BadFile(f"{path}, near line {reader.line_num}: {error}") from None
    return numbered


def _column(name: str) -> str:
    """The column a header name is, in any case; a name of no column as it is written."""
    return name.lower() if name.lower() in COLUMNS else name


def _filled(values: list[str]) -> bool:
    """Whether a row holds any value but blanks."""
    return any(value.strip() for value in values)


def _first_filled(reader: Any) -> list[str]:
    """The first row that holds a value (the header, past blank lines), or none."""
    return next((values for values in reader if _filled(values)), [])


def _on_one_line(path: Path, start: int, end: int, values: list[str]) -> None:
    """BadFile for a row that runs from line `start` to `end`, or holds a line break: a quoted
    value over lines, which no column may hold. Most often a stray double quote, which
    swallowed the lines up to the next one (rows that then went unsent, uncounted and unnamed,
    their civil numbers written unmasked in the refused row) or up to the end of the file."""
    if end > start or any("\n" in value or "\r" in value for value in values):
        runs = f"runs on to line {end}" if end > start else "is not closed"
        raise BadFile(
            f"{path}, line {start}: a quoted value {runs} (a stray double quote?); no column"
            " may hold a line break"
        )


def _fitted(path: Path, line: int, values: list[str], header: list[str]) -> dict[str, str]:
    """The row's values by column, a short row's missing ones empty (as an empty value would
    read); BadFile when it has values beyond the header's columns, which were dropped unread
    (a value with an unquoted comma shifts the rest)."""
    if len(values) > len(header):
        raise BadFile(
            f"{path}, line {line}: {len(values)} values, but the header names"
            f" {len(header)} columns (quote a value that holds a comma)"
        )
    if any(
        value.strip(LAYOUT_BLANKS) for name, value in zip(header, values, strict=False) if not name
    ):
        raise BadFile(
            f"{path}, line {line}: a value under a column the header does not name, which"
            f" would be sent by no one (the columns are {', '.join(COLUMNS)})"
        )
    return dict(zip(header, [*values, *[""] * (len(header) - len(values))], strict=True))


def _all_read(path: Path, line: int, names: Iterable[str], what: str) -> None:
    """BadFile for a column (or an NDJSON key) that is none of COLUMNS: its values were dropped
    unsent without a word, so a misspelt `chanel` stored every row as batch, and an NDJSON
    `centre_id` filed its row under the --center centre."""
    if unread := [name for name in names if name not in COLUMNS]:
        raise BadFile(
            f"{path}, line {line}: {what} {unread[0][:40]!r} is none of {', '.join(COLUMNS)}"
            " (its values would be sent by no one)"
        )


def _repeated(names: Iterable[str]) -> str | None:
    """The first name given twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


class _Twice(ValueError):
    """A JSON object naming one key twice (json.loads would keep the last value)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's keys as a CSV header's names are read, in any case; one named twice is
    refused."""
    pairs = [(_column(name), value) for name, value in pairs]
    if (twice := _repeated(name for name, _ in pairs)) is not None:
        raise _Twice(twice)
    return dict(pairs)


def _ndjson_row(path: Path, number: int, line: str) -> dict[str, str]:
    try:
        value = json.loads(line, object_pairs_hook=_unique)
    except json.JSONDecodeError as error:
        raise BadFile(f"{path}, line {number}: not JSON ({error.msg})") from None
    except _Twice as error:
        raise BadFile(
            f"{path}, line {number}: the object names {str(error)[:40]!r} twice"
        ) from None
    except RecursionError:
        raise BadFile(
            f"{path}, line {number}: not a row (arrays or objects nested too deep)"
        ) from None
    except ValueError:  # an integer past the digits Python converts (JSONDecodeError is above)
        raise BadFile(f"{path}, line {number}: not a row (a number of over 4,300 digits)") from None
    if not isinstance(value, dict):
        raise BadFile(f"{path}, line {number}: not a JSON object")
    for name, field in value.items():
        # str() would send true as "True" and ["a"] as "['a']".
        if isinstance(field, bool | list | dict):
            raise BadFile(
                f"{path}, line {number}: {name[:40]!r} is {json.dumps(field)[:40]}, not a"
                " string, a number or null"
            )
    row = {k: "" if v is None else str(v) for k, v in value.items()}
    try:
        # JSON may escape a lone surrogate (\ud800), which no UTF-8 message can carry.
        for text in (*row, *row.values()):
            text.encode()
    except UnicodeEncodeError:
        raise BadFile(f"{path}, line {number}: not UTF-8 text (a lone surrogate escape)") from None
    _all_read(path, number, row, "key")
    return row


def _checked(path: Path, line: int, row: dict[str, str]) -> dict[str, str]:
    """The row, if its channel and fee are ones the message can carry: an unknown channel
    would go as CHANNEL_UNSPECIFIED, which the worker stores as BATCH, and a fee that is no
    whole number of baisa (5.000, 5,000, empty) would go as -1."""
    channel = value_of(row, "channel")
    if channel and channel.lower() not in CHANNELS:
        raise BadFile(
            f"{path}, line {line}: channel {channel[:40]!r} is not one of {', '.join(CHANNELS)}"
            " (or empty, for batch)"
        )
    fee = value_of(row, "fee_baisa")
    if not fee:
        # The fee must equal the catalogue's: an empty one is not guessed as 0.
        raise BadFile(f"{path}, line {line}: fee_baisa is empty (the catalogue fee, in baisa)")
    if not FEE.fullmatch(fee):
        raise BadFile(
            f"{path}, line {line}: fee_baisa {fee[:40]!r} is not a whole number of baisa"
            " (digits only, no separators or decimals, at most 18)"
        )
    return row


def value_of(row: dict[str, str], column: str) -> str:
    """A row's value as sent: without the spaces and tabs around it, as the README writes a row
    (`r-1, ROP-VISA, counter, 5000, 90817263`): a civil number " 90817263" was refused, and a
    request id with a stray space was another request id.

    Only those: a request id is its client's opaque key, judged by the batch worker as intake
    judges a gRPC one (sanad.domain.codes.request_id_violations). str.strip() took a U+2028,
    U+0085 or no-break space off its ends too, and stored under "r-1" a row whose id "r-1\u2028"
    intake refuses; such a value is now sent as it is, and refused by field (so is a fee, a
    channel or a code ending in one), never taken for another."""
    return (row.get(column) or "").strip(LAYOUT_BLANKS)


def item_of(row: dict[str, str]) -> intake_pb2.SubmitTransactionRequest:
    """One row (its channel checked by read_numbered) as a submission, its values as value_of
    reads them; a bad number is left for the worker to name."""
    value = {column: value_of(row, column) for column in COLUMNS}
    channel = (value["channel"] or "batch").lower()
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    fee_text = value["fee_baisa"]
    return intake_pb2.SubmitTransactionRequest(
        request_id=value["request_id"],
        center_id=value["center_id"],
        service_code=value["service_code"],
        channel=f"CHANNEL_{channel.upper()}",
        fee_baisa=int(fee_text) if FEE.fullmatch(fee_text) else -1,
        beneficiary_civil_number=value["civil_number"],
    )


def content_id(center_id: str, items: Iterable[intake_pb2.SubmitTransactionRequest]) -> str:
    """A batch id for what a file sends, whatever its --chunk: the same file for the same
    centre is the same batch, so sending it again is answered the same and stores nothing
    twice; with another --chunk its first chunk is refused (batch-id-reused) before any row
    is stored twice. 32 hex digits."""
    digest = hashlib.sha256(center_id.encode())
    for item in items:
        data = item.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "big"))  # one item's end is never the next's start
        digest.update(data)
    return digest.hexdigest()[:32]


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
    path: Path,
    rows: Sequence[dict[str, str]],
    lines: Sequence[int],
    rejected: list[tuple[int, str]],
) -> None:
    """The refused rows (rows[n], on file line lines[n]) with their reasons, each named by its
    line as the file's other errors are; civil numbers are masked."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", *COLUMNS, "reason"])
        for number, reason in sorted(rejected):
            row = rows[number]
            shown = {**row, "civil_number": mask(row.get("civil_number", ""))}
            writer.writerow([lines[number], *(shown.get(c, "") for c in COLUMNS), reason])
