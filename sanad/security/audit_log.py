"""The audit trail's writer: each finished call's event appended to audit_log, never lost quietly.

An event MongoDB does not take (it is down, or did not answer in time) waits in the process and
is written again every few seconds until MongoDB takes it; the `_id` makes a write that reached
the server after all harmless. Each deferred event is logged in full as it waits, and one the
process could not keep (too many waiting, or still waiting when the process stops) is logged
as lost and counted, so the trail survives in the logs at worst and an alert says so.
"""

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
from collections import deque
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from sanad.coalesce import DUPLICATE_KEY, InsertCoalescer
from sanad.security.audit import COLLECTION, AuditEvent, document_of
from sanad.telemetry.metrics import AUDIT_EVENTS_DEFERRED, AUDIT_EVENTS_LOST

log = logging.getLogger("sanad.audit")

# Events waiting for MongoDB at most, and how often they are written again.
MAX_DEFERRED = 100_000
RETRY_S = 5.0
# Events written again per round trip.
RETRY_BATCH = 1000


class AuditLog:
    """Appends to the audit_log collection; events MongoDB did not take wait here until it does."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        retry_s: float = RETRY_S,
        max_deferred: int = MAX_DEFERRED,
    ) -> None:
        self.collection = db[COLLECTION]
        self.inserts = InsertCoalescer(self.collection)
        self.retry_s = retry_s
        self.max_deferred = max_deferred
        self.deferred: deque[dict[str, Any]] = deque()
        self._writing: set[asyncio.Task[None]] = set()
        self._retrying: asyncio.Task[None] | None = None
        self._closing = False

    async def record(self, event: AuditEvent, within_s: float | None = None) -> None:
        """Append one event; never raises into the finished call. An event MongoDB does not
        take waits and is written again (see the module's docstring).

        Waits for the write at most within_s (None: until it ends), what is left of the
        caller's deadline: a MongoDB that hangs without refusing held the answer of every
        audited call past its caller's deadline (DEADLINE_EXCEEDED, not the UNAVAILABLE the
        call had reached). The write goes on after the wait, and one that fails waits here."""
        document = document_of(event)
        # A task of its own, whose outcome is handled even when the call is cancelled while it
        # waits (the server cancels the calls still running when it stops).
        writing = asyncio.create_task(self.inserts.insert(document), context=contextvars.Context())
        self._writing.add(writing)
        writing.add_done_callback(functools.partial(self._written, document))
        if within_s is not None:
            await asyncio.wait({writing}, timeout=within_s)  # never cancels the write
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(writing)

    async def drain(self) -> None:
        """Finish writing the events of calls that already ended, those waiting included; call
        before closing MongoDB. What MongoDB still does not take is logged as lost."""
        await self.inserts.drain()
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
        self._closing = True
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
        while self.deferred and await self._write_deferred():
            pass
        self._lose(list(self.deferred), "still waiting when the process stopped")
        self.deferred.clear()
        AUDIT_EVENTS_DEFERRED.set(0)

    def _written(self, document: dict[str, Any], writing: asyncio.Task[None]) -> None:
        self._writing.discard(writing)
        if writing.cancelled():
            self._defer(document, "the write was cancelled")
        elif (error := writing.exception()) is not None:
            self._defer(document, error)

    def _defer(self, document: dict[str, Any], error: object) -> None:
        if self._closing:
            self._lose([document], f"not written ({error}) after the process began to stop")
            return
        if len(self.deferred) >= self.max_deferred:
            self._lose([document], f"{len(self.deferred)} waiting already")
            return
        self.deferred.append(document)
        AUDIT_EVENTS_DEFERRED.set(len(self.deferred))
        log.warning("audit event waits for MongoDB (%s): %s", error, _printable(document))
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry(), context=contextvars.Context())

    def _lose(self, documents: list[dict[str, Any]], why: str) -> None:
        for document in documents:
            log.error("audit event lost (%s): %s", why, _printable(document))
        AUDIT_EVENTS_LOST.inc(len(documents))

    async def _retry(self) -> None:
        while self.deferred:
            await asyncio.sleep(self.retry_s)
            try:
                while self.deferred and await self._write_deferred():
                    pass
            except Exception:
                log.exception("writing the waiting audit events failed; trying again later")

    async def _write_deferred(self) -> bool:
        """Write the oldest waiting events; False when MongoDB still does not take them."""
        batch = [self.deferred[n] for n in range(min(RETRY_BATCH, len(self.deferred)))]
        try:
            await self.collection.insert_many(batch, ordered=False)
        except BulkWriteError as error:
            if error.details.get("writeConcernErrors"):
                return False  # written but not acknowledged as asked: again, duplicates are fine
            # Unordered: every other event of the batch is stored now. One stored already was
            # written by an attempt that seemed to fail; any other refusal is for good.
            errors = error.details.get("writeErrors", [])
            refused = [batch[e["index"]] for e in errors if e.get("code") != DUPLICATE_KEY]
            self._lose(refused, "refused by MongoDB")
        except PyMongoError:
            return False
        for _ in batch:
            self.deferred.popleft()
        AUDIT_EVENTS_DEFERRED.set(len(self.deferred))
        log.info("%d waiting audit events written", len(batch))
        return True


def _printable(document: dict[str, Any]) -> str:
    """An event's stored form as one line of JSON, for the logs."""
    return json.dumps(document, default=str, ensure_ascii=False, sort_keys=True)
