"""A status change's OK audit event is taken once per call and stored by the try that accepts
the change; a call that accepts nothing gives it back to the security interceptor."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.errors import PreconditionFailed, Unavailable
from sanad.security import audit_offer
from sanad.security.audit import AuditEvent
from sanad.security.audit_offer import Offer
from sanad.security.identity import DEV_ADMIN
from services.intake.tracking import Tracker
from tests.unit.intake_tracking_fakes import FakeStore, stored, tracker

UPDATE = "/sanad.v1.IntakeService/UpdateTransactionStatus"


def build(results: Mapping[str, str]) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        subject="dev-admin",
        role="admin",
        agency_code="",
        center_id="",
        rpc=UPDATE,
        target={"id": "T1", "status": "TRANSACTION_STATUS_COMPLETED", **results},
        outcome="OK",
        request_id="req-1",
        recorded_by="intake",
    )


async def offered_update(
    t: Tracker, status: Status, request_id: str = "", note: str = "issued"
) -> tuple[Offer, Any]:
    """One call as the security interceptor runs it: the event offered in the call's own
    context, then the handler. Answers the offer and the call's result (or its error)."""
    offered = audit_offer.offer(build)
    try:
        result: Any = await t.update_status(
            "T1",
            status,
            note,
            actor="agency",
            identity=DEV_ADMIN,
            deadline=Deadline(5.0),
            request_id=request_id,
        )
    except (PreconditionFailed, Unavailable) as error:
        result = error
    return offered, result


def store_of(t: Tracker) -> FakeStore:
    assert isinstance(t.requests, FakeStore)
    return t.requests


async def test_an_accepted_change_stores_its_event_with_it() -> None:
    t, _ = tracker(stored(Status.IN_PROGRESS))
    offered, _ = await offered_update(t, Status.COMPLETED)
    (event,) = store_of(t).audit_log.stored
    assert (event["rpc"], event["outcome"], event["request_id"]) == (UPDATE, "OK", "req-1")
    assert offered.taken  # the interceptor writes nothing more


async def test_concurrent_calls_of_one_request_id_store_one_event_replays_give_theirs_back() -> (
    None
):
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    calls = await asyncio.gather(
        *(offered_update(t, Status.COMPLETED, request_id="rop-1") for _ in range(4))
    )
    assert store_of(t).attempts == 4  # three of them lost the compare-and-set, then replayed
    assert len(store_of(t).audit_log.stored) == 1
    assert sorted(offered.taken for offered, _ in calls) == [False, False, False, True]
    assert len(publisher.sent) == 1


async def test_a_call_refused_after_losing_a_round_gives_its_event_back() -> None:
    t, _ = tracker(stored(Status.IN_PROGRESS))
    calls = await asyncio.gather(
        offered_update(t, Status.COMPLETED, request_id="rop-1"),
        offered_update(t, Status.REJECTED, request_id="rop-2"),
    )
    (won,) = [offered for offered, result in calls if not isinstance(result, Exception)]
    (lost,) = [offered for offered, result in calls if isinstance(result, PreconditionFailed)]
    assert (won.taken, lost.taken) == (True, False)  # the refusal is the interceptor's to write
    assert len(store_of(t).audit_log.stored) == 1


async def test_a_refused_change_stores_no_event() -> None:
    t, _ = tracker(stored(Status.COMPLETED))
    offered, result = await offered_update(t, Status.IN_PROGRESS)
    assert isinstance(result, PreconditionFailed)
    assert (store_of(t).audit_log.stored, offered.taken) == ([], False)


async def test_a_replay_of_an_unconfirmed_change_gives_its_event_back() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    publisher.down = True
    first, result = await offered_update(t, Status.COMPLETED)
    assert isinstance(result, Unavailable)  # accepted and stored with its event, not sent
    assert first.taken
    publisher.down = False
    again, _ = await offered_update(t, Status.COMPLETED)  # sends it, answers as the first
    assert len(store_of(t).audit_log.stored) == 1
    assert not again.taken


@pytest.mark.parametrize("request_id", ["", "rop-1"])
async def test_a_call_that_offers_no_event_stores_none(request_id: str) -> None:
    t, _ = tracker(stored(Status.IN_PROGRESS))
    await t.update_status(
        "T1",
        Status.COMPLETED,
        "issued",
        actor="agency",
        identity=DEV_ADMIN,
        deadline=Deadline(5.0),
        request_id=request_id,
    )
    assert store_of(t).audit_log.stored == []
