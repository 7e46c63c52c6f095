"""Status changes and ratings intake accepted but did not see published: sent again in the
background until the broker confirms them.

A change is accepted when its record commits (status_changes.py), a rating when its claim does
(tracking.py); from then on other calls are judged against it. When its caller goes first (out
of time, cancelled) or is answered UNAVAILABLE (a broker that refused or did not confirm, a
commit whose outcome MongoDB could not tell), the next call on that transaction used to be the
only one that sent it: a completion nobody followed up stayed out of the store and the
statistics, and a centre's later cancel was refused against a status it could not read. Each
such transaction is tried again here, after a pause that doubles from FIRST_PAUSE_S to
LONGEST_PAUSE_S, until a try succeeds. A try reads what was accepted and sends it only if it is
still unsent, and the worker ignores a repeat, so a try for a change that was sent, or never
accepted, costs one read.

Kept in the process, like the claims awaiting a first confirm (unconfirmed.py): after a restart
the next call on the transaction sends its change, as it always did. At most MAX_WAITING
transactions wait; beyond that the oldest is given up, with a line.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sanad.telemetry.logs import LineBudget
from sanad.telemetry.metrics import INTAKE_RESENDS_WAITING

MAX_WAITING = 10_000
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
# What one try may take: its reads, and its publish's confirm.
TRY_S = 10.0
log = logging.getLogger("sanad.intake")


@dataclass
class _Waiting:
    send: Callable[[], Awaitable[None]]
    due: float
    pause_s: float


class Resends:
    """What waits to be sent again, by key ("status" or "rating", and the transaction)."""

    def __init__(
        self,
        limit: int = MAX_WAITING,
        first_pause_s: float = FIRST_PAUSE_S,
        longest_pause_s: float = LONGEST_PAUSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.first_pause_s = first_pause_s
        self.longest_pause_s = longest_pause_s
        self.clock = clock
        self._waiting: dict[str, _Waiting] = {}  # oldest first
        self._added = asyncio.Event()
        self._failures = LineBudget()
        INTAKE_RESENDS_WAITING.set_function(lambda: len(self._waiting))

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, key: str, send: Callable[[], Awaitable[None]]) -> None:
        """Run send() first_pause_s from now, and again until it returns; a key already
        waiting keeps its turn (its send reads what is accepted when it runs)."""
        if key in self._waiting:
            return
        self._waiting[key] = _Waiting(send, self.clock() + self.first_pause_s, self.first_pause_s)
        if len(self._waiting) > self.limit:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            log.warning(
                "too many accepted changes wait to be sent again; the oldest waits for the next "
                "call on its transaction",
                extra={"resend": oldest, "waiting": self.limit},
            )
        self._added.set()

    async def run(self) -> None:
        """Try what is due, then sleep until the next is due or one is added; until cancelled."""
        while True:
            self._added.clear()
            now = self.clock()
            for key in [key for key, waiting in self._waiting.items() if waiting.due <= now]:
                await self._try(key)
            next_due = min((waiting.due for waiting in self._waiting.values()), default=None)
            wait_s = None if next_due is None else max(next_due - self.clock(), 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._added.wait()

    async def _try(self, key: str) -> None:
        waiting = self._waiting.get(key)
        if waiting is None:  # given up meanwhile
            return
        try:
            async with asyncio.timeout(TRY_S):
                await waiting.send()
        except Exception as error:  # whatever failed (broker, MongoDB), the next try may not
            waiting.pause_s = min(waiting.pause_s * 2, self.longest_pause_s)
            waiting.due = self.clock() + waiting.pause_s
            fields = self._failures.fields("failed", {"resend": key})
            if fields is not None:
                log.warning(
                    "an accepted change is still unsent (%s); tried again in %.0f s",
                    error,
                    waiting.pause_s,
                    extra=fields,
                )
            return
        if self._waiting.get(key) is waiting:
            del self._waiting[key]
