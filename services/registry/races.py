"""Changes made to an entity as it stands, however many other changes race them."""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sanad.deadline import Deadline
from sanad.errors import Aborted
from services.registry.domain import CatalogService, Center

Entity = TypeVar("Entity", Center, CatalogService)
log = logging.getLogger("sanad.registry")

# Tries of a change sent without expected_revision while others change the same entity: each
# reloads it and judges the rules again. The pauses between them are random, to spread out a
# crowd of callers that all lost to one change, and grow with the tries and with how long a try
# takes, so they keep pace with a database slowed down by that crowd.
CHANGE_TRIES = 8
CHANGE_PAUSE_MAX_S = 1.0


async def as_it_stands(
    attempt: Callable[[], Awaitable[Entity]], what: str, *, retry: bool, deadline: Deadline
) -> Entity:
    """attempt() loads an entity, applies a change by the rules and saves it over the revision it
    loaded (Aborted when another change came first). With retry, that is a change meant for the
    entity as it stands: it is attempted again, up to CHANGE_TRIES times and while the caller's
    deadline leaves time for it, then Aborted."""
    for tried in range(1, CHANGE_TRIES + 1):
        started = time.monotonic()
        try:
            return await attempt()
        except Aborted:
            if not retry or tried == CHANGE_TRIES:
                raise
            pause = _pause(tried, time.monotonic() - started, deadline)
            if pause is None:
                log.info("%s changed meanwhile: no time left to try again (try %d)", what, tried)
                raise
        log.info("%s changed meanwhile: reloading it (try %d of %d)", what, tried + 1, CHANGE_TRIES)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last try returns or raises")


def _pause(tried: int, took_s: float, deadline: Deadline) -> float | None:
    """The pause before the next try, or None when it and a try as long as the last would end
    past the caller's deadline: a try cut off by the deadline would cost the caller its answer
    (DEADLINE_EXCEEDED instead of ABORTED) and the database its work, for nothing."""
    longest = min(took_s * 2**tried, CHANGE_PAUSE_MAX_S)
    pause = random.uniform(0, longest)  # noqa: S311 - jitter, not a secret
    left = deadline.left()
    if left is not None and pause + took_s >= left:
        return None
    return pause
