"""The audit events of a client-streaming call's items, when each item changes state on its own.

A streamed `SubmitTransactions` is one call for the security interceptor, which audits it as
one event; each item submits a transaction as a unary `SubmitTransaction` would, so each item
has an event of its own too, named by the policy's `item_targets` (sanad.security.policy). The
interceptor makes the call's ItemAudit available to its handler (`current`), which asks it for
each item's event in the item's own task:
- the item's OK event is offered there (sanad.security.audit_offer), so a fresh submission
  carries it in its message and the ingest worker stores it with the transaction, exactly as a
  unary call's;
- any other end (a replay answered from its claim, a refusal, a failure after the event was
  carried) is written by the service at once, as the interceptor writes a unary call's.
An item refused for the caller's rate is not submitted and gets no event of its own: a stream's
items cost the caller next to nothing to send, and their refusals would cost the database one
write each. The stream's own event records the call, and counts its items by outcome
(`item_outcomes`), those refused for the rate among them, and those its handler left unanswered
when the call ended (CANCELLED: the interceptor has the handler settle them first, `settle`).
"""

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

import grpc

from sanad.security import audit_offer, policy
from sanad.security.audit import AuditEvent
from sanad.security.audit_log import AuditLog

OK = grpc.StatusCode.OK.name

# (the item's target and results, its outcome) -> the event the interceptor would write
Build = Callable[[Mapping[str, str], str], AuditEvent]


class ItemEvent:
    """One item's event: offered to the item's handler, written at its end unless carried."""

    def __init__(self, audit: "ItemAudit", item: Any) -> None:
        self.audit = audit
        self.item = item
        # Built from the audit and the item, not through self: an offer holding a closure over
        # self made every streamed item's event a reference cycle, six objects a streamed item
        # that only the cyclic collector freed.
        self.offered = audit_offer.offer(partial(_built, audit, item, outcome=OK))

    async def end(self, outcome: str, results: Mapping[str, str] | None = None) -> None:
        """The item ended with this outcome (a gRPC status name). Its OK event was stored with
        its own write when the handler took it; otherwise the event is written now, naming
        what the carried event names when the item failed after carrying it."""
        self.audit.ended(outcome)
        if self.offered.taken and outcome == OK:
            return
        named = {**self.offered.results, **(results or {})}
        event = _built(self.audit, self.item, named, outcome=outcome)
        await self.audit.log.record(event, within_s=self.audit.left())


def _built(
    audit: "ItemAudit", item: Any, results: Mapping[str, str], *, outcome: str
) -> AuditEvent:
    """An item's event with this outcome, naming these results."""
    return audit.build(policy.audit_target(item, audit.targets, audit.results, results), outcome)


class ItemAudit:
    """The item events of one streaming call: who, which RPC and request id, from the call.

    `left` says what is left of the call's deadline (None: it has none): an item's answer waits
    for its event's write no longer, as a unary call's does (AuditLog.record)."""

    def __init__(
        self,
        build: Build,
        log: AuditLog,
        targets: tuple[str, ...],
        results: tuple[str, ...],
        left: Callable[[], float | None],
    ) -> None:
        self.build = build
        self.log = log
        self.left = left
        self.targets = targets
        self.results = results
        # How many items ended with each outcome, for the call's own event.
        self.outcomes: Counter[str] = Counter()
        self._settle: Callable[[], Awaitable[None]] | None = None

    def offer(self, item: Any) -> ItemEvent:
        """The item's event, its OK event offered in the running task's context: call it in the
        task that handles the item, and end() it there."""
        return ItemEvent(self, item)

    def ended(self, outcome: str) -> None:
        """Count an item that ended with this outcome; an item with no event of its own (one
        refused for the caller's rate) is counted here alone."""
        self.outcomes[outcome] += 1

    def settled_by(self, settle: Callable[[], Awaitable[None]]) -> None:
        """How the handler ends (cancels) the items it left unanswered: the call's event awaits
        it before it counts them, as gRPC may close the handler after the interceptor."""
        self._settle = settle

    async def settle(self) -> None:
        """End the items the call's handler left unanswered, before the call's event counts."""
        if self._settle is not None:
            await self._settle()


_current: ContextVar[ItemAudit | None] = ContextVar("sanad_audit_items", default=None)


def begin(audit: ItemAudit) -> None:
    """The running streaming call audits its items with this (the security interceptor)."""
    _current.set(audit)


def current() -> ItemAudit | None:
    """The running streaming call's item audit; None when its items are not audited."""
    return _current.get()
