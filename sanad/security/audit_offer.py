"""The seam through which a handler carries its call's audit event in its own durable write.

The security interceptor offers each audited unary call's OK event (`offer`); a handler whose
call makes one durable write of its own may take it (`take_offered`) and store it in that write:
intake puts an accepted submission's event in its TransactionSubmitted message, and the ingest
worker stores it in the same MongoDB transaction as the transaction; the registry inserts a
change's event in the change's own transaction, and intake an accepted status change's or
cancellation's in the transaction that accepts it, and a rating's in the transaction of the
claim it wins (sanad.security.carried). The event is then durable when the call returns, and
exists exactly when the change does.
"""

from collections.abc import Callable, Mapping
from contextvars import ContextVar

from sanad.security.audit import AuditEvent


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
