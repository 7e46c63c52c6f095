"""Coalesces concurrent single-document inserts into insert_many round trips.

Under load, many requests each insert one small document (an idempotency claim, an audit entry).
One round trip per document caps throughput at the database's per-operation cost; one
`insert_many(ordered=False)` for everything that queued while the previous round trip was in
flight keeps each caller's semantics (its own result or its own duplicate-key error) at a fraction
of the cost, and adds no delay when idle.
"""

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
    WriteConcernError,
    WriteError,
    WTimeoutError,
)

from sanad.expiry import awaited_within

Document = dict[str, Any]
DUPLICATE_KEY = 11000
# A queued document, its caller's future and what to call if it is inserted after its caller
# gave up.
_Queued = tuple[Document, "asyncio.Future[None]", Callable[[], None] | None]


class InsertCoalescer:
    """insert(doc) behaves like insert_one(doc) but shares round trips with concurrent callers."""

    def __init__(self, collection: AsyncCollection[Document], max_batch: int = 1000) -> None:
        self.collection = collection
        self.max_batch = max_batch
        self._pending: list[_Queued] = []
        self._flusher: asyncio.Task[None] | None = None

    async def insert(
        self,
        document: Document,
        inserted_late: Callable[[], None] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> None:
        """Insert one document; raises DuplicateKeyError or the round trip's error, or
        TimeoutError once timeout_s has passed (None: no limit but the round trip's own).

        inserted_late: called when the caller gave up (its time ran out, or it was cancelled)
        before the shared round trip ended and that round trip did insert the document after all.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((document, future, inserted_late))
        if self._flusher is None or self._flusher.done():
            # A fresh context: no caller's pymongo.timeout applies to everyone's batch.
            self._flusher = asyncio.create_task(self._flush(), context=contextvars.Context())
        await awaited_within(future, timeout_s)

    async def drain(self) -> None:
        """Wait until every queued document was written (or failed); before closing the client."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher])

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._write(batch)

    async def _write(self, batch: list["_Queued"]) -> None:
        failures: dict[int, Exception] = {}
        try:
            await self.collection.insert_many([doc for doc, _, _ in batch], ordered=False)
        except BulkWriteError as error:
            for failure in error.details.get("writeErrors", []):
                failures[failure["index"]] = _write_error(failure)
            if concern := error.details.get("writeConcernErrors"):
                # Written, but not as durably as asked (it may be rolled back): for every
                # document without an error of its own, what insert_one would have raised.
                lost = _concern_error(concern[-1])
                for index in range(len(batch)):
                    failures.setdefault(index, lost)
        except Exception as error:
            failures = dict.fromkeys(range(len(batch)), error)
        for index, (_, future, inserted_late) in enumerate(batch):
            if future.done():  # the caller gave up (its time ran out, or it was cancelled)
                if inserted_late is not None and index not in failures:
                    inserted_late()
                continue
            if index in failures:
                future.set_exception(failures[index])
            else:
                future.set_result(None)


def _write_error(failure: Document) -> WriteError:
    """What insert_one raises for this document's write error: its code, message and details
    (errInfo, any labels), so a caller judges it as it would insert_one's (a code that passes
    stays one that passes); not the document itself ("op"), which insert_one's error lacks."""
    details = {key: value for key, value in failure.items() if key != "op"}
    kind = DuplicateKeyError if failure.get("code") == DUPLICATE_KEY else WriteError
    return kind(failure.get("errmsg", ""), failure.get("code"), details)


def _concern_error(concern: Document) -> WriteConcernError:
    """What insert_one raises for a write concern error (PyMongo attaches the reply's labels to
    it): WTimeoutError when the wait for the write concern timed out."""
    timed_out = concern.get("code") == 50 or (concern.get("errInfo") or {}).get("wtimeout")
    kind = WTimeoutError if timed_out else WriteConcernError
    return kind(concern.get("errmsg", ""), concern.get("code"), concern)
