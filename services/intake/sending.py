"""Each accepted status change published once per process, unless a publish of it failed.

Concurrent retries of one change (the same request id, or the same unconfirmed change) each
find it unconfirmed while its first call is still publishing it, or has published it and not
yet noted the confirm; each sending it again cost the broker a message and the worker a
duplicate to skip. A publish already running for the change is awaited instead, and its outcome
is every waiter's; a change whose publish the broker confirmed here is not published again.
Another replica may still send it again: the worker ignores a repeat by its change id.
"""

import asyncio
from collections.abc import Awaitable, Callable

from sanad.errors import Unavailable

# Confirmed change ids remembered at most; the oldest is forgotten first (then a late retry of
# it publishes it once more, which the worker ignores).
MAX_CONFIRMED = 10_000


class Sends:
    """The running publish of each change id, and the change ids confirmed here."""

    def __init__(self, remembered: int = MAX_CONFIRMED) -> None:
        self.remembered = remembered
        self._running: dict[str, asyncio.Future[None]] = {}
        self._confirmed: dict[str, None] = {}  # a dict keeps insertion order: an ordered set

    def __len__(self) -> int:
        return len(self._running)

    async def send(
        self, change_id: str, publish: Callable[[], Awaitable[None]], timeout_s: float | None
    ) -> None:
        """Run publish() unless change_id was confirmed here or is being published, then wait
        for it within timeout_s (Unavailable after). A publish runs on when its caller goes
        (cancelled, out of time), so the others still get its outcome."""
        if change_id in self._confirmed:
            return
        running = self._running.get(change_id)
        if running is None:
            running = asyncio.ensure_future(publish())
            self._running[change_id] = running
            running.add_done_callback(lambda done: self._finished(change_id, done))
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(running)
        except TimeoutError as error:
            raise Unavailable("the broker did not confirm in time; retry later") from error

    def _finished(self, change_id: str, done: asyncio.Future[None]) -> None:
        if self._running.get(change_id) is done:
            del self._running[change_id]
        if done.cancelled() or done.exception() is not None:  # retrieved: no "never retrieved"
            return
        self._confirmed[change_id] = None
        if len(self._confirmed) > self.remembered:
            del self._confirmed[next(iter(self._confirmed))]
