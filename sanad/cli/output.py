"""How sanadctl prints: aligned key/value lines for people, JSON lines for machines."""

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from sanad.domain.characters import controlling
from sanad.rpc.status import field_violations
from sanad.telemetry.logs import REQUEST_ID_KEY

BAISA_PER_OMR = 1000


def terminal_safe(text: str) -> str:
    """text with what would act on the terminal instead of showing escaped (`\\x1b`, `\\n`,
    `\\u202e`): control characters, line and paragraph separators and bidirectional
    overrides. Values come from other callers (a centre's contact, a dead letter's type, a
    licence reason) and must not clear the screen or forge a line of the output. A
    bidirectional override makes the rest of its line read otherwise ("Trojan Source")."""
    if not any(controlling(character) for character in text):
        return text
    return "".join(_escaped(character) for character in text)


def _json_escaped(character: str) -> str:
    """A character of a JSON text; one that would act on a terminal as a \\u escape (outside
    strings JSON holds only ASCII, so every such character lies in a string)."""
    if controlling(character):
        return f"\\u{ord(character):04x}"
    return character


def _escaped(character: str) -> str:
    if controlling(character):
        return repr(character)[1:-1] if character.isascii() else f"\\u{ord(character):04x}"
    return character


def money(baisa: int) -> str:
    """Baisa as exact OMR with three decimals and grouped thousands, e.g. 5000 -> "5.000 OMR",
    270000500 -> "270,000.500 OMR" (a governorate's year of fees)."""
    sign = "-" if baisa < 0 else ""
    whole, part = divmod(abs(baisa), BAISA_PER_OMR)
    return f"{sign}{whole:,}.{part:03d} OMR"


def fee(baisa: int) -> str:
    """A fee in baisa with its OMR value."""
    return f"{baisa:,} baisa ({money(baisa)})"


def when(message: Message, name: str) -> str:
    """A timestamp field as RFC 3339 UTC, or "-" when unset."""
    if not message.HasField(name):
        return "-"
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToJsonString()


def label(enum_name: str, prefix: str) -> str:
    """An enum value name without its prefix, lower case: ..._STATUS_RECORDED -> recorded."""
    return enum_name.removeprefix(prefix).lower()


def yes_no(flag: bool) -> str:
    """A boolean for people."""
    return "yes" if flag else "no"


class Printer:
    """Writes results to stdout in the chosen format and errors to stderr."""

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        """Choose the format; streams default to the process's stdout and stderr."""
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def message(self, message: Message) -> None:
        """One protobuf result as a JSON line."""
        self.json(self.as_dict(message))

    @staticmethod
    def as_dict(message: Message) -> dict[str, Any]:
        """A protobuf result as the JSON object `message` prints: proto field names, defaults
        included."""
        return json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )

    def json(self, data: dict[str, Any]) -> None:
        """One plain result as a JSON line; Arabic stays readable, and what would act on a
        terminal (C1 controls, line separators, bidirectional overrides: JSON escapes only C0)
        is written as a \\u escape, the same JSON."""
        text = json.dumps(data, ensure_ascii=False)
        if not text.isprintable():
            text = "".join(_json_escaped(character) for character in text)
        print(text, file=self.out)

    def fields(self, pairs: Sequence[tuple[str, object]]) -> None:
        """Aligned "key: value" lines."""
        width = max((len(key) for key, _ in pairs), default=0) + 1
        for key, value in pairs:
            print(f"{key + ':':<{width}} {terminal_safe(str(value))}".rstrip(), file=self.out)

    def table(self, title: str, rows: Sequence[Sequence[str]]) -> None:
        """A titled block of column-aligned rows, or "title: none"."""
        title = terminal_safe(title)
        if not rows:
            print(f"{title}: none", file=self.out)
            return
        print(f"{title}:", file=self.out)
        rows = [[terminal_safe(cell) for cell in row] for row in rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
            print("  " + "  ".join(cells).rstrip(), file=self.out)

    def line(self, text: str) -> None:
        """One plain line for people."""
        print(terminal_safe(text), file=self.out)

    def error(self, text: str) -> None:
        """One error line on stderr."""
        print(f"error: {terminal_safe(text)}", file=self.err)

    def warning(self, text: str) -> None:
        """One warning line on stderr: the command goes on."""
        print(f"warning: {terminal_safe(text)}", file=self.err)

    def rpc_error(self, error: grpc.RpcError, sent_request_id: str = "") -> None:
        """A failed call as one line, with its request id (what finds the call's log line and
        audit event), then one line per field violation. The id is the one the server returned,
        or, for a call that ran out of time, the one sent: the server may have handled it."""
        answered = isinstance(error, grpc.Call | grpc.aio.AioRpcError)
        code = error.code() if answered else None
        details = error.details() if answered else str(error)
        name = code.name if code is not None else "UNKNOWN"
        line = f"{name}: {details or 'no details'}"
        request_id = _request_id(error)
        if not request_id and code is grpc.StatusCode.DEADLINE_EXCEEDED:
            request_id = sent_request_id
        if request_id and request_id not in line:
            line += f" (request id {request_id})"
        self.error(line)
        for field_name, description in _violations(error):
            print(f"  {terminal_safe(f'{field_name}: {description}')}", file=self.err)


def _request_id(error: grpc.RpcError) -> str:
    """The request id in a failed call's trailers; empty when the server sent none (no server
    answered: a refused connection, a deadline that passed first)."""
    if not isinstance(error, grpc.Call):
        return ""
    for key, value in error.trailing_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return ""


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """Field violations when the status carries a BadRequest; none when it cannot be read."""
    if not isinstance(error, grpc.Call):
        return []
    try:
        return field_violations(error)
    except ValueError:
        return []
