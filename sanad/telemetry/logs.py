"""JSON log lines that carry the current request id."""

import contextvars
import json
import logging
import sys
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

# The metadata that carries a call's request id (its correlation id in logs and the audit trail):
# the caller's own, or one the server makes, sent back in the trailers either way.
REQUEST_ID_KEY = "x-request-id"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process, logger, message, request id, extras."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_text(record.created),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """Readable lines for a terminal: level, logger, message, request id."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = request_id_var.get()
        suffix = f" [{request_id}]" if request_id else ""
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        extra_text = " " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}{extra_text}{suffix}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(process_name: str, level: str = "INFO", plain: bool = False) -> None:
    """Send every logger to stderr in one format; call once from main."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter() if plain else JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aio_pika", "aiormq", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Every LineBudget alive, so that tests make them all whole again (tests/conftest.py).
BUDGETS: "weakref.WeakSet[LineBudget]" = weakref.WeakSet()


@dataclass(slots=True)
class _Window:
    """One key's budget: when its window began, the lines written in it, the lines left out
    since the key's last written line, and when the first of those was left out (wall clock)."""

    began: float
    written: int = 0
    left_out: int = 0
    left_out_since: float = 0.0


class LineBudget:
    """At most `lines` log lines a `per_s` seconds for each key; the lines beyond are left out
    and counted, and the next line written says how many (its `left_out`).

    For lines one failure writes per call, message or item: during an outage at thousands of
    calls a second, a line each costs more than the calls and buries every other line. The
    counters keep the totals. The next line of a key says how many were left out and since when
    (`left_out_since`, as that line may come much later); lines left out after a key's last
    written line are not reported. Keys are few and fixed (a method and a code, an exchange
    and a kind of failure), never a caller's.
    """

    def __init__(
        self,
        lines: int = 10,
        per_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.lines = lines
        self.per_s = per_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._keys: dict[Hashable, _Window] = {}
        BUDGETS.add(self)

    def reset(self) -> None:
        """Every key's budget whole again, nothing left out."""
        self._keys.clear()

    def admit(self, key: Hashable) -> int | None:
        """None when this line is to be left out; else how many of key's were left out
        since its last line written."""
        now = self.clock()
        window = self._keys.get(key)
        if window is None:
            window = self._keys[key] = _Window(now)
        elif now - window.began >= self.per_s:
            window.began, window.written = now, 0
        if window.written >= self.lines:
            if not window.left_out:
                window.left_out_since = self.wall_clock()
            window.left_out += 1
            return None
        window.written += 1
        left_out, window.left_out = window.left_out, 0
        return left_out

    def fields(self, key: Hashable, given: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The fields (`extra`) of a line of key: given, with left_out and left_out_since when
        lines were left out; None when this line is to be left out."""
        since = window.left_out_since if (window := self._keys.get(key)) else 0.0
        left_out = self.admit(key)
        if left_out is None:
            return None
        found = dict(given or {})
        if left_out:
            found["left_out"] = left_out
            found["left_out_since"] = utc_text(since)
        return found


def utc_text(moment: float) -> str:
    """A wall-clock time (seconds since the epoch) as the JSON lines write it, to the
    millisecond in UTC."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}Z"
    )
