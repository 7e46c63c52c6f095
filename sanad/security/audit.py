"""The append-only audit trail: one document per state-changing call, written after it finished.

The store offers insert and find only; nothing in the code base updates or deletes an event. In
production, grant the services' MongoDB user `insert` and `find` on `audit_log` and nothing more.

A handler whose call makes one durable write of its own may carry the call's event in that write
(`take_offered`): intake puts an accepted submission's event in its TransactionSubmitted message,
and the ingest worker stores it in the same MongoDB transaction as the transaction; the registry
inserts a change's event in the change's own transaction (sanad.security.carried). The event is
then durable when the call returns, and exists exactly when the change does.

An event's `_id` is a time-sortable id of its time (milliseconds, as BSON stores the time), so
the `_id` index alone orders the trail newest first and bounds a time window: a second index on
`time` would cost every audited call another index write for nothing.

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
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from sanad.coalesce import DUPLICATE_KEY, InsertCoalescer
from sanad.domain.clock import epoch_millis
from sanad.domain.ids import first_id, new_id
from sanad.errors import Invalid, Violation
from sanad.rpc.timestamps import to_timestamp
from sanad.telemetry.metrics import AUDIT_EVENTS_DEFERRED, AUDIT_EVENTS_LOST
from sanad.v1 import audit_pb2

log = logging.getLogger("sanad.audit")

COLLECTION = "audit_log"
MAX_PAGE = 1000
DEFAULT_PAGE = 100
# Events waiting for MongoDB at most, and how often they are written again.
MAX_DEFERRED = 100_000
RETRY_S = 5.0
# Events written again per round trip.
RETRY_BATCH = 1000


@dataclass(frozen=True)
class AuditEvent:
    """Who called what on which target, the outcome, and when; `id` sorts by `time`."""

    time: datetime
    subject: str
    role: str
    agency_code: str
    center_id: str
    rpc: str
    target: dict[str, str]
    outcome: str
    request_id: str
    recorded_by: str
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", new_id(epoch_millis(self.time)))


class Offer:
    """The running call's audit event with outcome OK, for its handler to carry (once)."""

    def __init__(self, build: Callable[[Mapping[str, str]], AuditEvent]) -> None:
        self._build = build
        self.taken = False
        # The results the taken event names (a transaction id): a call that fails after its
        # handler carried the OK event names them too, so the two can be told apart.
        self.results: Mapping[str, str] = {}

    def take(self, results: Mapping[str, str]) -> AuditEvent:
        self.taken = True
        self.results = dict(results)
        return self._build(results)

    def give_back(self) -> None:
        """The handler did not store the event it took: the interceptor records the call as if
        it had never been taken."""
        self.taken = False
        self.results = {}


_offered: ContextVar[Offer | None] = ContextVar("sanad_audit_offer", default=None)


def offer(build: Callable[[Mapping[str, str]], AuditEvent]) -> Offer:
    """Offer the running call's event to its handler (the security interceptor does)."""
    offered = Offer(build)
    _offered.set(offered)
    return offered


def take_offered(**results: str) -> AuditEvent | None:
    """The running call's OK event, with these result fields, for the handler to store itself.

    The handler then owns the event: it must write it atomically with the change the call made,
    and the interceptor records nothing more unless the call fails. None when the call offers
    no event (not audited, streamed, or already taken).
    """
    offered = _offered.get()
    if offered is None or offered.taken:
        return None
    return offered.take(results)


def give_back_offered() -> None:
    """Give back the event take_offered gave: the write meant to hold it was certainly not
    stored (its MongoDB transaction aborted), so the interceptor records the call's outcome."""
    offered = _offered.get()
    if offered is not None:
        offered.give_back()


def document_of(event: AuditEvent) -> dict[str, Any]:
    """The stored form of an event."""
    document = dict(vars(event))  # shallow: asdict deep-copied on every audited call
    document["_id"] = document.pop("id")
    document["target"] = dict(event.target)
    document["target_values"] = sorted(set(event.target.values()))
    return document


def to_proto(event: AuditEvent) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        id=event.id,
        time=to_timestamp(event.time),
        subject=event.subject,
        role=event.role,
        agency_code=event.agency_code,
        center_id=event.center_id,
        rpc=event.rpc,
        target=event.target,
        outcome=event.outcome,
        request_id=event.request_id,
        recorded_by=event.recorded_by,
    )


def from_proto(message: audit_pb2.AuditEvent) -> AuditEvent:
    return AuditEvent(
        time=message.time.ToDatetime(tzinfo=UTC),
        subject=message.subject,
        role=message.role,
        agency_code=message.agency_code,
        center_id=message.center_id,
        rpc=message.rpc,
        target=dict(message.target),
        outcome=message.outcome,
        request_id=message.request_id,
        recorded_by=message.recorded_by,
        id=message.id,
    )


@dataclass(frozen=True)
class AuditQuery:
    """Filters of a listing; empty strings and None do not filter."""

    subject: str = ""
    rpc: str = ""
    outcome: str = ""
    target_value: str = ""
    start: datetime | None = None
    end: datetime | None = None
    page_size: int = 0
    page_token: str = ""


class AuditLog:
    """The audit_log collection; events MongoDB did not take wait here until it does."""

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

    async def record(self, event: AuditEvent) -> None:
        """Append one event; never raises into the finished call. An event MongoDB does not
        take waits and is written again (see the module's docstring)."""
        document = document_of(event)
        # A task of its own, whose outcome is handled even when the call is cancelled while it
        # waits (the server cancels the calls still running when it stops).
        writing = asyncio.create_task(self.inserts.insert(document), context=contextvars.Context())
        self._writing.add(writing)
        writing.add_done_callback(functools.partial(self._written, document))
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

    async def find(self, query: AuditQuery) -> tuple[list[AuditEvent], str]:
        """One page of matching events, newest first, and the next page token."""
        size, offset = _page(query)
        cursor = self.collection.find(_filter(query)).sort("_id", -1).skip(offset).limit(size + 1)
        documents = [doc async for doc in cursor]
        more = len(documents) > size
        events = [_event(doc) for doc in documents[:size]]
        return events, str(offset + size) if more else ""


def _page(query: AuditQuery) -> tuple[int, int]:
    violations = []
    if not 0 <= query.page_size <= MAX_PAGE:
        violations.append(Violation("page_size", f"must be between 0 and {MAX_PAGE}"))
    offset = 0
    if query.page_token:
        # isdigit() alone admits "²" and other non-ASCII digits that int() refuses.
        digits = query.page_token.isascii() and query.page_token.isdigit()
        if not digits or len(query.page_token) > 9:
            violations.append(Violation("page_token", "not a token this service issued"))
        else:
            offset = int(query.page_token)
    if violations:
        raise Invalid(violations)
    return query.page_size or DEFAULT_PAGE, offset


def _filter(query: AuditQuery) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("subject", "rpc", "outcome"):
        if value := getattr(query, key):
            found[key] = value
    if query.target_value:
        found["target_values"] = query.target_value
    # A window of times is the window of ids between the first ids of its ends.
    period: dict[str, str] = {}
    if query.start is not None:
        period["$gte"] = first_id(epoch_millis(query.start))
    if query.end is not None:
        period["$lt"] = first_id(epoch_millis(query.end))
    if period:
        found["_id"] = period
    return found


def _printable(document: dict[str, Any]) -> str:
    """An event's stored form as one line of JSON, for the logs."""
    return json.dumps(document, default=str, ensure_ascii=False, sort_keys=True)


def _event(doc: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        time=doc["time"],
        subject=doc["subject"],
        role=doc["role"],
        agency_code=doc.get("agency_code", ""),
        center_id=doc.get("center_id", ""),
        rpc=doc["rpc"],
        target=dict(doc.get("target", {})),
        outcome=doc["outcome"],
        request_id=doc.get("request_id", ""),
        recorded_by=doc.get("recorded_by", ""),
        id=doc["_id"],
    )
