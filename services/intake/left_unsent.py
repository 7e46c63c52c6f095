"""Status changes and ratings another intake accepted and stopped before it saw them published.

Before it accepts a change or claims a rating, intake notes it in `intake_unsent`, and clears
the note once the broker confirmed it (request_store.py; a cleared note stays, without its
time, for no role may remove a document). The process's own resends
(resends.py) send again what it saw fail; but a process killed, or stopped past its grace,
between the commit and the confirm took its resends with it, and the change waited for the
next call on its transaction, which might never come: a replicas helper killed an intake
during 400 cancellations and 9 to 28 stayed accepted and unsent.

So every intake looks, every SWEEP_S, for notes older than STALE_S (far beyond a confirm and
the first resends of the process that wrote them) and puts them among its own resends. A try
sends the transaction's latest accepted change, or its claimed rating, unless it is sent (the
worker ignores a repeat), then clears the note as it read it. Several intakes may try the same
note; each try is a read and at most a repeat. The age of the oldest note is
sanad_intake_unsent_oldest_seconds, whichever process wrote it.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from sanad.domain.clock import utcnow
from services.intake.resends import Resends

SWEEP_S = 30.0
STALE_S = 60.0
# Notes taken into the resends at one sweep.
MAX_PER_SWEEP = 1_000
# The longest one read or clearing of notes may take.
READ_S = 10.0
log = logging.getLogger("sanad.intake")

Send = Callable[[str], Awaitable[None]]


class UnsentNotes(Protocol):
    """request_store.RequestStore, as far as the sweep uses it."""

    async def left_unsent(
        self, before: datetime, limit: int, timeout_s: float | None = None
    ) -> list[tuple[str, datetime]]: ...

    async def forget_unsent(
        self, key: str, since: datetime, timeout_s: float | None = None
    ) -> None: ...


class LeftUnsent:
    """Finds the notes of changes left unsent and sends them again through the resends."""

    def __init__(
        self,
        store: UnsentNotes,
        resends: Resends,
        senders: dict[str, Send],
        sweep_s: float = SWEEP_S,
        stale_s: float = STALE_S,
    ) -> None:
        self.store = store
        self.resends = resends
        # By kind ("status", "rating"): what sends a transaction's accepted change of it.
        self.senders = senders
        self.sweep_s = sweep_s
        self.stale_s = stale_s
        self.oldest_s = 0.0

    async def run(self) -> None:
        """Sweep every sweep_s (jittered, so replicas spread out), until cancelled."""
        while True:
            await asyncio.sleep(self.sweep_s * random.uniform(0.5, 1.5))  # noqa: S311 - spread
            await self.sweep()  # a read that fails is logged and tried at the next sweep

    async def sweep(self) -> int:
        """Take the stale notes into the resends; how many were taken."""
        now = utcnow()
        try:
            before = now - timedelta(seconds=self.stale_s)
            notes = await self.store.left_unsent(before, MAX_PER_SWEEP, READ_S)
        except Exception:
            log.warning("could not read the notes of changes left unsent", exc_info=True)
            return 0
        self.oldest_s = (now - notes[0][1]).total_seconds() if notes else 0.0
        taken = 0
        for key, since in notes:
            kind, _, transaction_id = key.partition(" ")
            send = self.senders.get(kind)
            if send is None or not transaction_id:
                continue
            self.resends.add(key, self._try(key, since, send, transaction_id))
            taken += 1
        if taken:
            log.info("changes another intake left unsent are sent again", extra={"notes": taken})
        return taken

    def _try(
        self, key: str, since: datetime, send: Send, transaction_id: str
    ) -> Callable[[], Awaitable[None]]:
        async def attempt() -> None:
            await send(transaction_id)
            await self.store.forget_unsent(key, since, READ_S)

        return attempt
