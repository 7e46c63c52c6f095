"""JSON log lines that carry the current request id."""

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process, logger, message, request id, extras."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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


@dataclass(slots=True)
class _Window:
    """One key's budget: when its window began, the lines written in it, and the lines left out
    since the key's last written line."""

    began: float
    written: int = 0
    left_out: int = 0


class LineBudget:
    """At most `lines` log lines a `per_s` seconds for each key; the lines beyond are left out
    and counted, and the next line written says how many (its `left_out`).

    For lines one failure writes per call, message or item: during an outage at thousands of
    calls a second, a line each costs more than the calls and buries every other line. The
    counters keep the totals; lines left out after a key's last written line are not reported.
    """

    def __init__(
        self,
        lines: int = 10,
        per_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lines = lines
        self.per_s = per_s
        self.clock = clock
        self._keys: dict[Hashable, _Window] = {}

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
            window.left_out += 1
            return None
        window.written += 1
        left_out, window.left_out = window.left_out, 0
        return left_out

    def fields(self, key: Hashable, given: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The fields (`extra`) of a line of key: given, with left_out when lines were left
        out; None when this line is to be left out."""
        left_out = self.admit(key)
        if left_out is None:
            return None
        found = dict(given or {})
        if left_out:
            found["left_out"] = left_out
        return found
