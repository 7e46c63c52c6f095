"""Domain errors: raised by domain code, mapped to gRPC status in one interceptor."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Violation:
    """One bad field of a request: its path and why it was refused."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """The request is malformed; names each bad field (INVALID_ARGUMENT)."""

    def __init__(self, violations: Iterable[Violation], message: str = "invalid request") -> None:
        self.violations = tuple(violations)
        detail = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{message}: {detail}" if detail else message)


class OutOfRange(DomainError):
    """A value past what exists now, e.g. a revision not reached yet; it may become valid, so it
    is not Invalid. Names each bad field as Invalid does (OUT_OF_RANGE)."""

    def __init__(self, violations: Iterable[Violation], message: str = "out of range") -> None:
        self.violations = tuple(violations)
        detail = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{message}: {detail}" if detail else message)


class NotFound(DomainError):
    """The named resource does not exist (NOT_FOUND), or the caller may not be told it does.

    `audit_note` is for the audit trail alone, never the caller: a resource outside the
    caller's scope is answered as a missing one, and the trail says which it was."""

    def __init__(self, message: str, *, audit_note: str = "") -> None:
        super().__init__(message)
        self.audit_note = audit_note


class AlreadyExists(DomainError):
    """A resource with the same key exists, or a key was reused differently (ALREADY_EXISTS)."""


class PreconditionFailed(DomainError):
    """The system is not in a state that allows the request (FAILED_PRECONDITION)."""


class Aborted(DomainError):
    """A concurrent change came first: what the caller read is no longer current, so read
    again and retry (ABORTED, as AIP-154 answers a stale etag)."""


class Unavailable(DomainError):
    """A dependency cannot be reached right now; the caller may retry (UNAVAILABLE)."""


class Unauthenticated(DomainError):
    """No or a bad credential (UNAUTHENTICATED)."""


class PermissionDenied(DomainError):
    """A valid identity without the right (PERMISSION_DENIED)."""


class Internal(DomainError):
    """A failure no rule foresaw, answered as such where it must not end the call (one item of
    a stream): its message names no internals, only what to quote (INTERNAL)."""


class RateLimited(DomainError):
    """Too many requests from one identity (RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def check(violations: list[Violation]) -> None:
    """Raise Invalid when any violation was collected."""
    if violations:
        raise Invalid(violations)


def collected(found: list[Violation], parse: Callable[[], T]) -> T | None:
    """What parse() gives; None, its violations added to found, when it raises Invalid. For
    naming every bad field of a request at once: collect each field's, then check(found)."""
    try:
        return parse()
    except Invalid as error:
        found.extend(error.violations)
        return None
