"""A file of security settings, read again when it changes: the JWT verification keys rotate and
certificate revocations take effect without a restart.

Callers ask for the current content; at most every `every_s` seconds that looks at the file (one
stat, by path so that a Kubernetes Secret's symlink swap is seen) and reads it only when its
identity, size or mtime changed. A read that fails keeps the previous content: the process is
never left without keys (or forgets a revocation), and the failure is logged and shown by the
file's `failing` gauge. The stat and the rare read are synchronous on purpose: a few
microseconds every few seconds costs less than a background task whose life every server would
have to manage.

A scrape of /metrics looks too (the gauges are read through the same check), so the gauges tell
the file as it is even while no call needs it: they changed only with a verification, and a file
mended 12 minutes before still showed failing to a process no token had reached since.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client import Counter, Gauge

log = logging.getLogger("sanad.security")

Stamp = tuple[int, int, int, int]  # device, inode, size, mtime in ns
T = TypeVar("T")


@dataclass(frozen=True)
class FileKind(Generic[T]):
    """What one kind of watched file holds, and how its log lines and metrics show it."""

    name: str  # "JWT key file", in the log
    parse: Callable[[bytes], T]
    # The parse errors whose message quotes nothing of the file (no key material).
    errors: tuple[type[Exception], ...]
    count: Callable[[T], int]
    unit: str  # what count() counts, in the log: "key(s)"
    shown: Callable[[T], str]  # the content for the log: public names only
    entries: Gauge  # count() of the content in use
    reloads: Counter  # labelled by outcome: ok, failed
    failing: Gauge  # 1 while the file cannot be read or parsed


class WatchedFile(Generic[T]):
    """The content of one file, read again after it changes; the first read must succeed
    (it raises OSError or one of the kind's errors). Each kind of file is a subclass naming its
    KIND."""

    KIND: ClassVar[FileKind[Any]]

    def __init__(
        self, path: str, every_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        kind: FileKind[T] = self.KIND
        self.kind, self.path, self.every_s, self.clock = kind, path, every_s, clock
        self.stamp: Stamp | None = _stamp(path)
        self.content = _read(kind, path)  # at start a bad file stops the process: raise
        self.failing = False
        self.checked_at = clock()
        # The event loop asks, the metrics server's thread scrapes: one looks at a time.
        self._looking = threading.Lock()
        kind.entries.set_function(self._count)
        kind.failing.set_function(self._failing)
        log.info("%s %s loaded: %s", kind.name, path, kind.shown(self.content))

    def current(self) -> T:
        """The content in use, after a look at the file if the last one is every_s old."""
        if self.clock() - self.checked_at >= self.every_s:
            with self._looking:
                now = self.clock()
                if now - self.checked_at >= self.every_s:  # not looked at meanwhile
                    self.checked_at = now
                    self._reload_if_changed()
        return self.content

    def _failing(self) -> float:
        """The failing gauge as a scrape reads it: after a look at the file."""
        self._looked_at()
        return 1.0 if self.failing else 0.0

    def _count(self) -> float:
        """The entries gauge as a scrape reads it: after a look at the file."""
        return float(self.kind.count(self._looked_at()))

    def _looked_at(self) -> T:
        """current() for a scrape, which an exception would fail whole (every metric of the
        process gone): one the reload did not foresee keeps the content and is logged."""
        try:
            return self.current()
        except Exception:
            log.exception("looking at the %s %s for a scrape failed", self.kind.name, self.path)
            return self.content

    def _reload_if_changed(self) -> None:
        try:
            stamp = _stamp(self.path)
        except OSError as error:  # removed, or mid-swap: keep the content, say so once
            if self.stamp is not None:
                self.stamp = None
                self._failed(f"cannot stat it ({error.strerror})")
            return
        if stamp == self.stamp:
            return
        self.stamp = stamp  # a failed read is not retried until the file changes again
        try:
            content = _read(self.kind, self.path)
        except OSError as error:
            self._failed(error.strerror)
            return
        except self.kind.errors as error:
            self._failed(str(error))
            return
        except Exception as error:  # a reload must never fail the call it runs in
            # Not a case the parser knows: the type only, as the message could quote the file.
            self._failed(f"cannot be parsed ({type(error).__name__})")
            return
        self.content = content
        self.failing = False
        self.kind.reloads.labels(outcome="ok").inc()
        log.info("%s %s reloaded: %s", self.kind.name, self.path, self.kind.shown(content))

    def _failed(self, why: str | None) -> None:
        self.kind.reloads.labels(outcome="failed").inc()
        self.failing = True
        log.error(
            "%s %s not reloaded, the previous %d %s stay in use: %s",
            self.kind.name,
            self.path,
            self.kind.count(self.content),
            self.kind.unit,
            why,
        )


def _stamp(path: str) -> Stamp:
    """What changes when the file does; os.stat follows symlinks, so a swapped link shows."""
    found = os.stat(path)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def _read(kind: FileKind[T], path: str) -> T:
    with open(path, "rb") as file:
        return kind.parse(file.read())
