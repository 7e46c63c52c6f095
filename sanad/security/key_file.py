"""The JWT key file, read again when it changes: signing keys rotate without a restart.

Verification asks for the current keys; at most every `every_s` seconds that looks at the file
(one stat, by path so that a Kubernetes Secret's symlink swap is seen) and reads it only when its
identity, size or mtime changed. A read that fails keeps the previous keys: the process is never
left without keys, and the failure is logged and shown by sanad_auth_jwt_key_file_failing. The
stat and the rare read are synchronous on purpose: a few microseconds every few seconds costs less
than a background task whose life every server would have to manage.

A scrape of /metrics looks too (the gauges are read through the same check), so the gauges tell
the file as it is even while no token is verified: they changed only with a verification, and a
file mended 12 minutes before still showed failing to a process no token had reached since.
"""

import logging
import os
import threading
import time
from collections.abc import Callable

from sanad.security.jwks import KeyFileError, KeySet, parse_keys
from sanad.telemetry.metrics import AUTH_JWT_KEY_FILE_FAILING, AUTH_JWT_KEY_RELOADS, AUTH_JWT_KEYS

log = logging.getLogger("sanad.security")

Stamp = tuple[int, int, int, int]  # device, inode, size, mtime in ns


class ReloadingKeys:
    """The keys of one file, re-read after it changes; the first read must succeed."""

    def __init__(
        self, path: str, every_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path, self.every_s, self.clock = path, every_s, clock
        self.stamp: Stamp | None = _stamp(path)
        self.keys = _read(path)  # at start a bad file stops the process: raise
        self.failing = False
        self.checked_at = clock()
        # The event loop verifies, the metrics server's thread scrapes: one looks at a time.
        self._looking = threading.Lock()
        AUTH_JWT_KEYS.set_function(self._key_count)
        AUTH_JWT_KEY_FILE_FAILING.set_function(self._failing)
        log.info("JWT verification keys loaded from %s: %s", path, _kids(self.keys))

    def current(self) -> KeySet:
        """The keys in use, after a look at the file if the last one is every_s old."""
        if self.clock() - self.checked_at >= self.every_s:
            with self._looking:
                now = self.clock()
                if now - self.checked_at >= self.every_s:  # not looked at meanwhile
                    self.checked_at = now
                    self._reload_if_changed()
        return self.keys

    def _failing(self) -> float:
        """sanad_auth_jwt_key_file_failing as a scrape reads it: after a look at the file."""
        self._looked_at()
        return 1.0 if self.failing else 0.0

    def _key_count(self) -> float:
        """sanad_auth_jwt_keys as a scrape reads it: after a look at the file."""
        return float(len(self._looked_at().keys))

    def _looked_at(self) -> KeySet:
        """current() for a scrape, which an exception would fail whole (every metric of the
        process gone): one the reload did not foresee keeps the keys and is logged."""
        try:
            return self.current()
        except Exception:
            log.exception("looking at the JWT key file %s for a scrape failed", self.path)
            return self.keys

    def _reload_if_changed(self) -> None:
        try:
            stamp = _stamp(self.path)
        except OSError as error:  # removed, or mid-swap: keep the keys, say so once
            if self.stamp is not None:
                self.stamp = None
                self._failed(f"cannot stat it ({error.strerror})")
            return
        if stamp == self.stamp:
            return
        self.stamp = stamp  # a failed read is not retried until the file changes again
        try:
            keys = _read(self.path)
        except (OSError, KeyFileError) as error:
            self._failed(str(error) if isinstance(error, KeyFileError) else error.strerror)
            return
        except Exception as error:  # a reload must never fail the call it runs in
            # Not a case parse_keys knows: the type only, as the message could quote the file.
            self._failed(f"cannot be parsed ({type(error).__name__})")
            return
        self.keys = keys
        self.failing = False
        AUTH_JWT_KEY_RELOADS.labels(outcome="ok").inc()
        log.info("JWT verification keys reloaded from %s: %s", self.path, _kids(keys))

    def _failed(self, why: str | None) -> None:
        AUTH_JWT_KEY_RELOADS.labels(outcome="failed").inc()
        self.failing = True
        log.error(
            "JWT key file %s not reloaded, the previous %d key(s) stay in use: %s",
            self.path,
            len(self.keys.keys),
            why,
        )


def _stamp(path: str) -> Stamp:
    """What changes when the file does; os.stat follows symlinks, so a swapped link shows."""
    found = os.stat(path)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def _read(path: str) -> KeySet:
    with open(path, "rb") as file:
        return parse_keys(file.read())


def _kids(keys: KeySet) -> str:
    """The key ids, for the log: public names, never key material."""
    return ", ".join(key.kid or "(no kid)" for key in keys.keys)
