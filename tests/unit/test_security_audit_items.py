"""Per-item audit events of a streaming call: an item's OK event is offered to its own task and
written by the service only when no write of the item carried it."""

import asyncio
import contextvars
import gc
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sanad.security import audit_items, audit_offer
from sanad.security.audit import AuditEvent
from sanad.security.audit_items import ItemAudit


@dataclass(frozen=True)
class Item:
    request_id: str
    center_id: str
    fee_baisa: int = 5000


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        # How long each record() was allowed to wait for its write (None: until it ends).
        self.waits: list[float | None] = []

    async def record(self, event: AuditEvent, within_s: float | None = None) -> None:
        self.events.append(event)
        self.waits.append(within_s)


def item_audit(left: float | None = None) -> tuple[ItemAudit, RecordingLog]:
    log = RecordingLog()

    def build(target: Any, outcome: str) -> AuditEvent:
        return AuditEvent(
            time=datetime.now(UTC),
            subject="desk",
            role="centre",
            agency_code="",
            center_id="C1",
            rpc="/sanad.v1.IntakeService/SubmitTransactions",
            target=dict(target),
            outcome=outcome,
            request_id="call-1",
            recorded_by="intake",
        )

    targets = ("request_id", "center_id", "fee_baisa")
    audit = ItemAudit(build, log, targets, ("transaction_id",), lambda: left)  # type: ignore[arg-type]
    return audit, log


async def test_an_item_whose_write_carried_its_ok_event_writes_none_of_its_own() -> None:
    audit, log = item_audit()

    async def fresh_item() -> AuditEvent | None:
        event = audit.offer(Item("r-1", "C1"))
        carried = audit_offer.take_offered(transaction_id="T1")
        await event.end(audit_items.OK, {"transaction_id": "T1"})
        return carried

    carried = await asyncio.create_task(fresh_item())
    assert carried is not None
    # The item's string fields only (fee_baisa is not text), and the result it names.
    assert carried.target == {"request_id": "r-1", "center_id": "C1", "transaction_id": "T1"}
    assert carried.outcome == "OK"
    assert log.events == []


async def test_a_replayed_or_refused_item_is_written_at_its_end() -> None:
    audit, log = item_audit()
    await audit.offer(Item("r-1", "C1")).end(audit_items.OK, {"transaction_id": "T0"})
    await audit.offer(Item("r-2", "C1")).end("NOT_FOUND")
    assert [(e.target, e.outcome) for e in log.events] == [
        ({"request_id": "r-1", "center_id": "C1", "transaction_id": "T0"}, "OK"),
        ({"request_id": "r-2", "center_id": "C1"}, "NOT_FOUND"),
    ]


async def test_an_item_failing_after_its_event_was_carried_names_the_carried_results() -> None:
    audit, log = item_audit()

    async def unconfirmed_item() -> None:
        event = audit.offer(Item("r-1", "C1"))
        audit_offer.take_offered(transaction_id="T1")  # in a message whose confirm never came
        await event.end("UNAVAILABLE")

    await asyncio.create_task(unconfirmed_item())
    (event,) = log.events
    assert (event.target["transaction_id"], event.outcome) == ("T1", "UNAVAILABLE")


async def test_each_item_task_is_offered_its_own_event() -> None:
    audit, _ = item_audit()
    taken: dict[str, AuditEvent | None] = {}

    async def one(request_id: str) -> None:
        audit.offer(Item(request_id, "C1"))
        await asyncio.sleep(0)  # the other items' tasks offer theirs meanwhile
        taken[request_id] = audit_offer.take_offered(transaction_id=f"T-{request_id}")

    await asyncio.gather(*(asyncio.create_task(one(r)) for r in ("a", "b", "c")))
    assert {r: e.target["request_id"] for r, e in taken.items() if e} == {
        "a": "a",
        "b": "b",
        "c": "c",
    }


async def test_an_item_waits_for_its_event_at_most_what_is_left_of_the_calls_deadline() -> None:
    # A hung MongoDB must not hold an item's answer past the call's deadline, as it must not a
    # unary call's (AuditLog.record).
    bounded, log = item_audit(left=2.5)
    await bounded.offer(Item("r-1", "C1")).end("UNAVAILABLE")
    unbounded, without = item_audit(left=None)
    await unbounded.offer(Item("r-2", "C1")).end("UNAVAILABLE")
    assert log.waits == [2.5]
    assert without.waits == [None]  # a call without a deadline waits for the event's write


def test_an_items_event_is_freed_with_its_item_not_left_to_the_cyclic_collector() -> None:
    # Every streamed item has one: a reference cycle would leave each to the collector, whose
    # collections took a share of intake's CPU per item.
    audit, _ = item_audit()
    gc.disable()
    try:
        event = contextvars.copy_context().run(audit.offer, Item("r-1", "C1"))
        gone = weakref.ref(event)
        del event
        assert gone() is None
    finally:
        gc.enable()
