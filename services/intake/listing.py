"""ListTransactions' query and its page tokens: a centre's transactions, newest first."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sanad import paging
from sanad.domain.transactions import Status
from sanad.errors import Invalid, Violation

Document = dict[str, Any]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PAGE_KIND = "transactions"


@dataclass(frozen=True)
class ListQuery:
    """One page of a centre's transactions, newest first, after a cursor."""

    center_id: str
    status: Status | None = None
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    agency_code: str = ""
    after: tuple[datetime, str] | None = None

    def filters(self) -> tuple[object, ...]:
        """What a page token is bound to: the filters as the caller asked (not the page size)."""
        return (self.center_id, self.status, self.submitted_after, self.submitted_before)


def encode_token(query: ListQuery, doc: Document) -> str:
    """An opaque cursor after this transaction (its submit time and id), for the query's filters."""
    cursor = json.dumps({"t": doc["submit_time"].isoformat(), "id": doc["_id"]})
    return paging.encode_token(PAGE_KIND, query.filters(), cursor)


def decode_token(query: ListQuery, token: str) -> tuple[datetime, str] | None:
    """The cursor of a page token issued for the same filters, None for no token, or Invalid.

    Checked in full, since a client can forge any bytes: issued here for these filters, the id a
    string MongoDB can encode (no lone surrogates) and the time a moment whose UTC form a
    datetime holds. RecursionError is json's answer to deep nesting.
    """
    cursor = paging.decode_token(PAGE_KIND, query.filters(), token)
    if not cursor:
        return None
    try:
        return _cursor(json.loads(cursor))
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:
        raise Invalid([Violation("page_token", "is not a token this service issued")]) from error


def _cursor(data: Any) -> tuple[datetime, str]:
    """Time (aware, UTC) and id of a decoded token; ValueError, TypeError or OverflowError
    (a UTC time outside years 1-9999) for anything encode_token does not write."""
    moment, last_id = datetime.fromisoformat(data["t"]), data["id"]
    if not isinstance(last_id, str):
        raise TypeError(f"the id is a {type(last_id).__name__}, not a string")
    last_id.encode()  # UnicodeEncodeError (a ValueError) for a lone surrogate
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC), last_id
    return moment.astimezone(UTC), last_id


def page_size(requested: int) -> int:
    """Default 50, at most 500; negative is invalid."""
    return paging.page_size(requested, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
