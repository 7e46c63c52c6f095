"""ListAuditEvents' query: the audit trail read newest first, filtered, a page at a time.

The `_id` of an event is a time-sortable id of its time (sanad.security.audit), so the `_id`
index alone orders the listing and bounds its time window.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sanad.domain.clock import epoch_millis
from sanad.domain.ids import first_id
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
        """One page of matching events, newest first, and the next page token."""
        size, offset = page_of(query)
        cursor = self.collection.find(_filter(query)).sort("_id", -1).skip(offset).limit(size + 1)
        documents = [doc async for doc in cursor]
        more = len(documents) > size
        events = [from_document(doc) for doc in documents[:size]]
        return events, str(offset + size) if more else ""


def page_of(query: AuditQuery) -> tuple[int, int]:
    """The page size and offset a listing asks for, or Invalid naming each bad one."""
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
    # No event is older than 1970, where ids begin: an earlier start is no bound, an earlier end
    # bounds out everything.
    if query.start is not None:
        period["$gte"] = first_id(max(epoch_millis(query.start), 0))
    if query.end is not None:
        period["$lt"] = first_id(max(epoch_millis(query.end), 0))
    if period:
        found["_id"] = period
    return found
