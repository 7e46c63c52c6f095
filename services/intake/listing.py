"""ListTransactions' query and its opaque page tokens: a centre's transactions, newest first."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sanad.domain.transactions import Status
from sanad.errors import Invalid, Violation

Document = dict[str, Any]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# An issued token is at most 104 characters: base64 of the 77 bytes of a 26-character id and a
# time written out in full ("9999-12-31T23:59:59.999999+00:00"). Anything longer was forged, and
# is refused before it is decoded: a short bound leaves json no room to nest deeply.
MAX_TOKEN_LENGTH = 256


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


def encode_token(doc: Document) -> str:
    """An opaque cursor: the last item's submit time and id."""
    raw = json.dumps({"t": doc["submit_time"].isoformat(), "id": doc["_id"]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str) -> tuple[datetime, str]:
    """The cursor of a page token, or Invalid.

    Checked in full, since a client can forge any bytes: no longer than an issued token, the
    id a string MongoDB can encode (no lone surrogates) and the time a moment whose UTC form a
    datetime holds. RecursionError is json's answer to deep nesting.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise Invalid([Violation("page_token", "is longer than any token this service issues")])
    try:
        return _cursor(json.loads(base64.urlsafe_b64decode(token.encode())))
    except (
        ValueError,
        KeyError,
        TypeError,
        OverflowError,
        RecursionError,
        binascii.Error,
    ) as error:
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
    if requested < 0:
        raise Invalid([Violation("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
