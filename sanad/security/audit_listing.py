"""ListAuditEvents' query: the audit trail read newest first, filtered, a page at a time.

The `_id` of an event is a time-sortable id of its time (sanad.security.audit), so the `_id`
index alone orders the listing and bounds its time window.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sanad.domain.clock import epoch_millis
from sanad.domain.ids import first_id, is_id
from sanad.errors import Invalid, Violation
from sanad.security.audit import COLLECTION, AuditEvent, from_document

MAX_PAGE = 1000
DEFAULT_PAGE = 100


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


class AuditListing:
    """The audit_log collection as AuditService lists it."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[COLLECTION]

    async def find(self, query: AuditQuery) -> tuple[list[AuditEvent], str]:
        """One page of matching events, newest first, and the next page token: the last
        event's id, the next page being the events whose ids sort before it as the trail stands
        when that page is read. So no page repeats an event (an offset did, pushed on by the
        events written meanwhile). Ids sort by an event's time, not by when it was written:
        an event written while the trail is paged is on a later page when its time is before
        the last event read (one kept back while MongoDB was away, or carried by a message
        stored later; in that event's own millisecond, either way by its random bits), and on
        none when its time is after (every new call's, and a late one inside the pages read)."""
        size, before = page_of(query)
        found = _filter(query)
        if before:
            window = found.setdefault("_id", {})
            window["$lt"] = min(window.get("$lt", before), before)
        cursor = self.collection.find(found).sort("_id", -1).limit(size + 1)
        documents = [doc async for doc in cursor]
        more = len(documents) > size
        events = [from_document(doc) for doc in documents[:size]]
        return events, str(documents[size - 1]["_id"]) if more else ""


def page_of(query: AuditQuery) -> tuple[int, str]:
    """The page size a listing asks for and the id its page ends before ("" for the first
    page), or Invalid naming each bad one."""
    violations = []
    if not 0 <= query.page_size <= MAX_PAGE:
        violations.append(Violation("page_size", f"must be between 0 and {MAX_PAGE}"))
    if query.page_token and not is_id(query.page_token):
        violations.append(Violation("page_token", "not a token this service issued"))
    if violations:
        raise Invalid(violations)
    return query.page_size or DEFAULT_PAGE, query.page_token


def _filter(query: AuditQuery) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("subject", "rpc", "outcome"):
        if value := getattr(query, key):
            found[key] = value
    if query.target_value:
        found["target_values"] = query.target_value
    # A window of times is the window of ids between the first ids of its ends, each the first
    # millisecond at or after it: an event's time is a whole millisecond, so one at 56.129 s is
    # before an end of 56.1295 s and not at or after a start of 56.1295 s (rounded down, both
    # ends had it the wrong way).
    period: dict[str, str] = {}
    # No event is older than 1970, where ids begin: an earlier start is no bound, an earlier end
    # bounds out everything.
    if query.start is not None:
        period["$gte"] = first_id(max(epoch_millis(query.start, up=True), 0))
    if query.end is not None:
        period["$lt"] = first_id(max(epoch_millis(query.end, up=True), 0))
    if period:
        found["_id"] = period
    return found
