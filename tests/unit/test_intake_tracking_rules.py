"""Tracking rules: status changes and cancelling are checked against the stored document and
the latest accepted change; a transaction's history is capped, all but its final step."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from sanad import deadline as deadlines
from sanad.amqp.topology import STATUS_CHANGED, Topology
from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.errors import Invalid, NotFound, PermissionDenied, PreconditionFailed, Unavailable
from sanad.records import proto_from_document
from sanad.rpc.replies import DEFAULT_MAX_MESSAGE_BYTES, reply_budget
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import common_pb2, events_pb2
from services.intake import status_changes
from services.intake.status_changes import MAX_CHANGE_ATTEMPTS, MAX_HISTORY_STEPS
from services.intake.tracking import MAX_NOTE_LENGTH, Change, Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import (
    CENTRE,
    MOL,
    OTHER_CENTRE,
    ROP,
    T0,
    FakeStore,
    stored,
    tracker,
    update,
)
from workers.batch import content as batch_content


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
    # The serving centre sees the transaction: it is told it may not update it.
    with pytest.raises(PermissionDenied):
        await update(t, Status.IN_PROGRESS, CENTRE)
    # Another agency is not told the transaction exists: answered as an unknown id is.
    with pytest.raises(NotFound, match=r"^transaction 'T1' not found$"):
        await update(t, Status.IN_PROGRESS, MOL)


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
    with pytest.raises(NotFound, match=r"^transaction 'T1' not found$"):
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


def worn(steps: int, status: Status = Status.IN_PROGRESS, **extra: Any) -> dict[str, Any]:
    """A stored transaction whose history has this many steps, the last in `status`."""
    history = [{"status": "SUBMITTED", "time": T0}] + [{"status": status.value, "time": T0}] * (
        steps - 1
    )
    return stored(status, history=history, **extra)


async def test_a_change_past_the_history_cap_is_refused_and_a_final_one_still_allowed() -> None:
    t, publisher = tracker(worn(MAX_HISTORY_STEPS))
    with pytest.raises(PreconditionFailed, match=f"limit of {MAX_HISTORY_STEPS} history steps"):
        await update(t, Status.AWAITING_DOCUMENTS)
    assert publisher.sent == []
    change = await t.cancel("T1", "r", actor="a", identity=DEV_ADMIN, deadline=Deadline(None))
    assert change.status is Status.CANCELLED
    for final in (Status.COMPLETED, Status.REJECTED):
        t, _ = tracker(worn(MAX_HISTORY_STEPS))
        assert (await update(t, final)).status is final


@pytest.mark.parametrize("paused", [Status.AWAITING_DOCUMENTS, Status.AWAITING_AGENCY])
async def test_a_paused_transaction_at_the_history_cap_may_resume_and_complete(
    paused: Status,
) -> None:
    # COMPLETED does not follow a paused status: without a resume past the cap, only a
    # rejection or a cancel (both refunding the fee) could end it.
    t, _ = tracker(worn(MAX_HISTORY_STEPS, paused))
    assert (await update(t, Status.IN_PROGRESS)).status is Status.IN_PROGRESS
    with pytest.raises(PreconditionFailed, match="only a final status"):
        await update(t, Status.AWAITING_DOCUMENTS)
    assert (await update(t, Status.COMPLETED)).status is Status.COMPLETED


async def test_the_history_cap_counts_changes_accepted_but_not_yet_stored() -> None:
    # The worker has applied changes 1-3 (in the history); 4 is accepted, not yet applied.
    store = FakeStore(worn(MAX_HISTORY_STEPS - 2, sequence=3))
    applied = events_pb2.TransactionStatusChanged(sequence=3, actor="agency", note="started")
    store.changes["T1"] = {
        "status": "IN_PROGRESS",
        "sequence": 3,
        "time": T0,
        "confirmed": True,
        "event": applied.SerializeToString(),
    }
    publisher = RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"))
    await update(t, Status.AWAITING_DOCUMENTS)  # step 199 once applied
    await update(t, Status.IN_PROGRESS)  # step 200
    with pytest.raises(PreconditionFailed):
        await update(t, Status.AWAITING_DOCUMENTS)  # would be step 201
    assert (await update(t, Status.COMPLETED)).status is Status.COMPLETED


def test_a_migrated_history_leaves_room_under_the_cap() -> None:
    # A migrated transaction is stored SUBMITTED, RECORDED, then its migrated steps.
    assert 2 + batch_content.MAX_HISTORY_STEPS < MAX_HISTORY_STEPS


def test_a_transaction_at_the_cap_with_the_longest_notes_fits_one_reply() -> None:
    step = {"status": "IN_PROGRESS", "time": T0, "actor": "a" * 300, "note": "د" * MAX_NOTE_LENGTH}
    doc = stored(Status.CANCELLED, history=[step] * (MAX_HISTORY_STEPS + 1))
    shown = proto_from_document(doc, T0)
    assert shown.ByteSize() < reply_budget(DEFAULT_MAX_MESSAGE_BYTES) // 4


async def test_a_change_that_lost_a_round_waits_a_random_while_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Callers that retry in step keep colliding: each lost round is followed by a random
    pause (six calls of one request id once lost all five rounds together in CI)."""

    class LosingTwice(FakeStore):
        async def accept_change(self, *args: Any, **kwargs: Any) -> bool:
            if self.attempts < 2:
                self.attempts += 1
                return False
            return await super().accept_change(*args, **kwargs)

    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(status_changes, "asyncio", SimpleNamespace(sleep=pause))
    monkeypatch.setattr(deadlines, "random", SimpleNamespace(uniform=lambda low, high: high))
    store, publisher = LosingTwice(stored(Status.RECORDED)), RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"))
    change = await update(t, Status.IN_PROGRESS)
    assert change.status is Status.IN_PROGRESS
    assert len(pauses) == 2
    assert all(p > 0 for p in pauses)


@pytest.mark.parametrize("text", ["\x00nul", "\x1b[31mred", "\u202egnp.exe", "line\u2028break"])
async def test_a_note_or_a_reason_that_acts_on_a_display_is_refused_by_field(text: str) -> None:
    # Shown to the centre and the beneficiary as they are: as a licence's reason, no control
    # character, line separator or reordering control (sanad.domain.characters).
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    with pytest.raises(Invalid) as refused:
        await t.update_status(
            "T1", Status.COMPLETED, text, actor="a", identity=DEV_ADMIN, deadline=Deadline(None)
        )
    assert [v.field for v in refused.value.violations] == ["note"]
    with pytest.raises(Invalid) as refused:
        await t.cancel("T1", text, actor="a", identity=DEV_ADMIN, deadline=Deadline(None))
    assert [v.field for v in refused.value.violations] == ["reason"]
    assert publisher.sent == []
    assert (await update(t, Status.COMPLETED)).status is Status.COMPLETED  # "note": plain text
