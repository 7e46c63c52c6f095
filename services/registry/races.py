"""Changes made to an entity as it stands, however many other changes race them."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sanad.deadline import Deadline, pause_after_losing
from sanad.errors import Aborted
from services.registry.domain import CatalogService, Center

Entity = TypeVar("Entity", Center, CatalogService)
log = logging.getLogger("sanad.registry")

# Tries of a change sent without expected_revision while others change the same entity: each
# reloads it and judges the rules again, after a random pause (sanad.deadline.pause_after_losing).
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
            took_s = time.monotonic() - started
            pause = pause_after_losing(tried, took_s, deadline, CHANGE_PAUSE_MAX_S)
            if pause is None:
                log.info("%s changed meanwhile: no time left to try again (try %d)", what, tried)
                raise
        log.info("%s changed meanwhile: reloading it (try %d of %d)", what, tried + 1, CHANGE_TRIES)
        await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last try returns or raises")
