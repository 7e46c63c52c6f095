"""Page sizes and opaque page tokens of the List RPCs (keyset paging): a token continues only the
listing, with the same filters, that issued it."""

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

from sanad.errors import Invalid, Violation

T = TypeVar("T")
_NOT_A_NEXT_PAGE = "is not a next_page_token of a request with the same filters"
# Every issued token is far shorter (a listing kind, a fingerprint and a key of at most a few
# hundred bytes); a longer one was forged and is refused before it is decoded.
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class PageRequest:
    """Where a page starts (after this key, or at the beginning) and how long it is."""

    size: int
    after: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the key to continue after; empty `next_after` on the last."""

    items: list[T]
    next_after: str = ""


def page_size(requested: int, default: int, maximum: int) -> int:
    """0 means the default; larger than the maximum is capped; negative is refused."""
    if requested < 0:
        raise Invalid([Violation("page_size", "must not be negative")])
    return min(requested or default, maximum)


def encode_token(kind: str, filters: object, after: str) -> str:
    """An opaque token bound to the listing kind and its filters; empty when there is no more."""
    if not after:
        return ""
    raw = f"{kind}:{_fingerprint(filters)}:{after}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, filters: object, token: str) -> str:
    """The key to continue after; Invalid on field page_token for anything not from encode_token."""
    if not token:
        return ""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Invalid([Violation("page_token", "is longer than any token this service issues")])
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise Invalid([Violation("page_token", _NOT_A_NEXT_PAGE)]) from error
    token_kind, fingerprint, after = [*raw.split(":", 2), "", ""][:3]
    if token_kind != kind or fingerprint != _fingerprint(filters) or not after:
        raise Invalid([Violation("page_token", _NOT_A_NEXT_PAGE)])
    return after


def _fingerprint(filters: object) -> str:
    # A token only continues the listing it came from; other filters need a fresh start.
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:12]
