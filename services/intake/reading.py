"""Reading use cases: get, list and watch stored transactions, as far as the caller may see them.

Reads go to the stored documents the workers write; intake's changes (tracking.py) reach them
through the queue, so a read may lag a change intake has just accepted.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from sanad.deadline import Deadline
from sanad.domain.submissions import shown_id
from sanad.domain.transactions import FINISHED, Status
from sanad.errors import Invalid, NotFound, Unavailable, Violation
from sanad.security.identity import Identity
from services.intake import access
from services.intake.listing import ListQuery

Document = dict[str, Any]


class Finds(Protocol):
    async def get_transaction(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None: ...


class Store(Finds, Protocol):
    async def list_transactions(
        self, query: ListQuery, timeout_s: float | None = None
    ) -> list[Document]: ...


# Time left of a deadline under which a read that failed for time is the deadline's end.
NEARLY_OVER_S = 0.05
# What the audit trail notes of a transaction answered NOT_FOUND because the caller may not
# read it: the caller is told no more than of an unknown id, the trail tells them apart.
OUTSIDE_SCOPE = "outside the caller's scope"


class DeadlineReached(Exception):
    """A watch ran to the caller's deadline: an end the caller asked for, not an outage."""


async def stored(
    store: Finds, transaction_id: str, deadline: Deadline, identity: Identity
) -> Document:
    """The stored transaction; NotFound without one (or without an id), and alike for one the
    caller may not read: another centre's or agency's transaction is not told to exist."""
    found = None
    if transaction_id:
        found = await store.get_transaction(transaction_id, deadline.left())
    missing = f"transaction {shown_id(transaction_id)!r} not found"
    if found is None:
        raise NotFound(missing)
    if not access.may_read(identity, found):
        raise NotFound(missing, audit_note=OUTSIDE_SCOPE)
    return found


async def _before_deadline(read: Callable[[], Awaitable[Document]], deadline: Deadline) -> Document:
    """The read's document; DeadlineReached instead of Unavailable once no time is left.

    A read that finds no time left (or times out on the last of it) says Unavailable, which
    is right while time remains: the database is slow. At the deadline the caller is owed
    DEADLINE_EXCEEDED, and alerts count UNAVAILABLE as a server error. PyMongo gives up at once
    on a read with less time left than a round trip takes, so one begun in the deadline's last
    moments fails a little before it: within NEARLY_OVER_S of the deadline, that is the deadline
    too (a watch ended UNAVAILABLE at its deadline once in 40).
    """
    if deadline.left() == 0:
        raise DeadlineReached
    try:
        return await read()
    except Unavailable:
        left = deadline.left()
        if left is not None and left < NEARLY_OVER_S:
            raise DeadlineReached from None
        raise


class Reader:
    """Reads of stored transactions."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Set as the server's drain begins: open watches end at once (UNAVAILABLE: watch again,
        # on another replica), instead of holding the drain for its whole grace.
        self.closing = asyncio.Event()

    def close(self) -> None:
        """End every watch at its next poll, the one it waits for now included."""
        self.closing.set()

    async def get(self, transaction_id: str, identity: Identity, deadline: Deadline) -> Document:
        """The stored transaction, if the caller may read it."""
        return await stored(self.store, transaction_id, deadline, identity)

    async def list(
        self, query: ListQuery, identity: Identity, deadline: Deadline
    ) -> tuple[list[Document], bool]:
        """One page, and whether more follow it."""
        center_id, agency_code = access.listing_scope(identity, query.center_id)
        if not center_id:
            raise Invalid([Violation("center_id", "is required")])
        scoped = replace(query, center_id=center_id, agency_code=agency_code)
        docs = await self.store.list_transactions(scoped, deadline.left())
        return docs[: scoped.page_size], len(docs) > scoped.page_size

    async def watch(
        self,
        transaction_id: str,
        identity: Identity,
        deadline: Deadline,
        poll_s: float,
        ended: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[Document]:
        """The transaction now and after each change, until it finishes or ended() says the
        call is over (checked at every poll: a cancel the watch missed, as Python 3.11's
        wait_for can drop one inside PyMongo, left it polling until the transaction changed);
        DeadlineReached when the caller's deadline runs out first."""
        doc = await _before_deadline(lambda: self.get(transaction_id, identity, deadline), deadline)
        seen = None
        while not ended():
            version = (doc["status"], len(doc["history"]), doc.get("rating", 0))
            if version != seen:
                seen = version
                yield doc
            if Status(doc["status"]) in FINISHED:
                return
            left = deadline.left()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_s if left is None else min(poll_s, left)):
                    await self.closing.wait()
            if self.closing.is_set():
                raise Unavailable("the service is shutting down; watch the transaction again")
            doc = await _before_deadline(
                lambda: stored(self.store, transaction_id, deadline, identity), deadline
            )
