"""ListTransactions' query and its opaque page tokens: a centre's transactions, newest first."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sanad.domain.transactions import Status
from sanad.errors import Invalid, Violation

Document = dict[str, Any]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


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
    """The cursor of a page token, or Invalid."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(data["t"]), str(data["id"])
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise Invalid([Violation("page_token", "is not a token this service issued")]) from error


def page_size(requested: int) -> int:
    """Default 50, at most 500; negative is invalid."""
    if requested < 0:
        raise Invalid([Violation("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
