"""Tracking rules: status changes and cancelling are checked against the stored document and
the latest accepted change."""

import asyncio
from typing import Any

import pytest

from sanad.amqp.topology import STATUS_CHANGED, Topology
from sanad.domain.transactions import Status
from sanad.errors import Invalid, NotFound, PermissionDenied, PreconditionFailed, Unavailable
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import common_pb2, events_pb2
from services.intake.deadline import Deadline
from services.intake.status_changes import MAX_CHANGE_ATTEMPTS
from services.intake.tracking import Change, Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import (
    CENTRE,
    MOL,
    OTHER_CENTRE,
    ROP,
    FakeStore,
    stored,
    tracker,
    update,
)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Status.COMPLETED, Status.IN_PROGRESS),
        (Status.REJECTED, Status.COMPLETED),
        (Status.CANCELLED, Status.IN_PROGRESS),
        (Status.AWAITING_DOCUMENTS, Status.COMPLETED),
        (Status.AWAITING_AGENCY, Status.AWAITING_DOCUMENTS),
        (Status.IN_PROGRESS, Status.IN_PROGRESS),
    ],
)
async def test_illegal_status_transitions_are_refused(current: Status, new: Status) -> None:
    t, publisher = tracker(stored(current))
    with pytest.raises(PreconditionFailed):
        await update(t, new)
    assert publisher.sent == []


@pytest.mark.parametrize("status", [None, Status.CANCELLED, Status.RECORDED, Status.SUBMITTED])
async def test_an_agency_reports_only_reportable_statuses(status: Status | None) -> None:
    t, _ = tracker(stored())
    with pytest.raises(Invalid) as caught:
        await update(t, status)
    assert [v.field for v in caught.value.violations] == ["status"]


async def test_a_legal_change_is_published_with_a_new_change_id() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    change = await update(t, Status.AWAITING_DOCUMENTS)
    assert (change.status, change.actor, change.note) == (
        Status.AWAITING_DOCUMENTS,
        "agency",
        "note",
    )
    await update(t, Status.IN_PROGRESS)  # judged against the accepted AWAITING_DOCUMENTS
    (key, body, kind, timeout), (_, body2, _, _) = publisher.sent
    event = events_pb2.TransactionStatusChanged.FromString(body)
    assert (key, kind) == (STATUS_CHANGED, "sanad.v1.TransactionStatusChanged")
    assert event.transaction_id == "T1"
    assert event.status == common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS
    assert event.change_id != events_pb2.TransactionStatusChanged.FromString(body2).change_id
    # Within the publisher's own confirm limit, not the caller's: the publish is every
    # concurrent retry's (services/intake/sending.py); each caller waits within its deadline.
    assert timeout is None


async def test_only_the_owning_agency_updates() -> None:
    t, _ = tracker(stored())
    await update(t, Status.IN_PROGRESS, ROP)
    for who in (MOL, CENTRE):
        with pytest.raises(PermissionDenied):
            await update(t, Status.IN_PROGRESS, who)


async def test_an_unknown_transaction_is_not_found() -> None:
    t, _ = tracker()
    with pytest.raises(NotFound):
        await update(t, Status.IN_PROGRESS)


async def test_a_finished_transaction_cannot_be_cancelled() -> None:
    for status in (Status.COMPLETED, Status.REJECTED, Status.CANCELLED):
        t, _ = tracker(stored(status))
        with pytest.raises(PreconditionFailed):
            await t.cancel("T1", "r", actor="a", identity=DEV_ADMIN, deadline=Deadline(None))
    t, publisher = tracker(stored(Status.AWAITING_AGENCY))
    change = await t.cancel("T1", "asked", actor="a", identity=CENTRE, deadline=Deadline(None))
    assert change.status is Status.CANCELLED
    assert len(publisher.sent) == 1
    with pytest.raises(PermissionDenied):
        await t.cancel("T1", "", actor="a", identity=OTHER_CENTRE, deadline=Deadline(None))


async def test_a_broker_outage_reaches_the_caller_as_unavailable() -> None:
    t, publisher = tracker(stored())
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.IN_PROGRESS)


async def test_each_change_is_judged_against_the_latest_accepted_and_numbered() -> None:
    t, publisher = tracker(stored(Status.RECORDED))  # the stored document never moves here
    await update(t, Status.AWAITING_DOCUMENTS)
    with pytest.raises(PreconditionFailed):
        await update(t, Status.COMPLETED)  # AWAITING_DOCUMENTS -> COMPLETED is illegal
    await update(t, Status.IN_PROGRESS)
    await update(t, Status.COMPLETED)
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert [(e.sequence, e.status) for e in sent] == [
        (1, common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS),
        (2, common_pb2.TRANSACTION_STATUS_IN_PROGRESS),
        (3, common_pb2.TRANSACTION_STATUS_COMPLETED),
    ]
    times = [e.time.ToDatetime() for e in sent]
    assert times == sorted(times)
    assert len(set(times)) == 3


async def test_concurrent_changes_take_distinct_sequence_numbers_in_a_legal_order() -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    outcomes = await asyncio.gather(
        update(t, Status.IN_PROGRESS), update(t, Status.COMPLETED), return_exceptions=True
    )
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert sorted(e.sequence for e in sent) == list(range(1, len(sent) + 1))
    assert all(isinstance(o, Change | PreconditionFailed) for o in outcomes)
    assert len(sent) == sum(isinstance(o, Change) for o in outcomes) >= 1


async def test_an_accepted_change_whose_publish_failed_is_sent_before_the_next() -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.IN_PROGRESS)
    publisher.down = False
    await update(t, Status.COMPLETED)  # judged against the accepted IN_PROGRESS
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert [(e.sequence, e.status) for e in sent] == [
        (1, common_pb2.TRANSACTION_STATUS_IN_PROGRESS),
        (2, common_pb2.TRANSACTION_STATUS_COMPLETED),
    ]


async def test_a_change_that_loses_every_try_is_unavailable_and_says_why() -> None:
    class AlwaysConflicting(FakeStore):
        """Every compare-and-set lost: a concurrent change, or a write conflict of its
        transaction, came first each time."""

        async def accept_change(self, *args: Any, **kwargs: Any) -> bool:
            self.attempts += 1
            return False

    store, publisher = AlwaysConflicting(stored(Status.RECORDED)), RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"))
    with pytest.raises(Unavailable, match="lost 5 tries to concurrent changes or database write"):
        await update(t, Status.IN_PROGRESS)
    assert store.attempts == MAX_CHANGE_ATTEMPTS
    assert publisher.sent == []
