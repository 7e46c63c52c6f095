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
accepted, costs one read. A transaction added again while its try runs is tried once more
after it: the try may have read the change before the one just accepted.

Kept in the process, like the claims awaiting a first confirm (unconfirmed.py): what a process
that stopped left here is found by every intake in its notes (left_unsent.py), and sent again
through its own resends; the next call on the transaction sends it too. At most MAX_WAITING
transactions wait; beyond that the oldest is given up, with a line (its note stays).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sanad.telemetry.logs import LineBudget

MAX_WAITING = 10_000
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 60.0
# What one try may take: its reads, and its publish's confirm.
TRY_S = 10.0
# Tries running at once: a sweep of many waiting transactions is not one try after another.
CONCURRENT_TRIES = 16
log = logging.getLogger("sanad.intake")


@dataclass
class _Waiting:
    send: Callable[[], Awaitable[None]]
    added: float
    due: float
    pause_s: float
    trying: bool = False
    again: bool = False  # added again while its try ran


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
        self._tries = asyncio.Semaphore(CONCURRENT_TRIES)
        self._failures = LineBudget()

    def __len__(self) -> int:
        return len(self._waiting)

    def oldest_s(self) -> float:
        """How long the transaction waiting longest has waited (0 with none waiting)."""
        oldest = next(iter(self._waiting.values()), None)
        return 0.0 if oldest is None else self.clock() - oldest.added

    def add(self, key: str, send: Callable[[], Awaitable[None]]) -> None:
        """Run send() first_pause_s from now, and again until it returns. A key already waiting
        keeps its turn (its send reads what is accepted when it runs), and is tried once more
        if its try is running now."""
        if (waiting := self._waiting.get(key)) is not None:
            waiting.again = waiting.trying
            return
        now = self.clock()
        self._waiting[key] = _Waiting(send, now, now + self.first_pause_s, self.first_pause_s)
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
        """Try what is due, at most CONCURRENT_TRIES at once, then sleep until the next is due
        or one is added; until cancelled."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._added.clear()
                now = self.clock()
                for key, waiting in self._waiting.items():
                    if waiting.due <= now and not waiting.trying:
                        waiting.trying = True
                        task = asyncio.create_task(self._try(key, waiting))
                        running.add(task)
                        task.add_done_callback(running.discard)
                        task.add_done_callback(lambda _: self._added.set())
                due = [w.due for w in self._waiting.values() if not w.trying]
                wait_s = None if not due else max(min(due) - self.clock(), 0.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._added.wait()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _try(self, key: str, waiting: _Waiting) -> None:
        waiting.again = False
        try:
            async with self._tries, asyncio.timeout(TRY_S):
                await waiting.send()
        except (Exception, asyncio.CancelledError) as error:
            # Whatever failed (broker, MongoDB, a shared publish cancelled), the next try may
            # not; only this task's own cancellation ends it.
            task = asyncio.current_task()
            if isinstance(error, asyncio.CancelledError) and task and task.cancelling():
                raise
            waiting.pause_s = min(waiting.pause_s * 2, self.longest_pause_s)
            self._after(waiting, waiting.pause_s)
            fields = self._failures.fields("failed", {"resend": key})
            if fields is not None:
                log.warning(
                    "an accepted change is still unsent (%s); tried again in %.0f s",
                    error or type(error).__name__,
                    waiting.pause_s,
                    extra=fields,
                )
            return
        finally:
            waiting.trying = False
        if waiting.again:  # a newer change may have been accepted after this try's read
            self._after(waiting, 0.0)
        elif self._waiting.get(key) is waiting:
            del self._waiting[key]

    def _after(self, waiting: _Waiting, pause_s: float) -> None:
        waiting.due = self.clock() + pause_s
