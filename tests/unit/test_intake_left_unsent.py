"""A status change or rating an intake accepted and stopped before it saw published is sent by
another intake, from the note written before it was accepted (services/intake/left_unsent.py)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from sanad.amqp.topology import Topology
from sanad.domain.transactions import Status
from sanad.errors import Unavailable
from sanad.v1 import common_pb2, events_pb2
from services.intake.left_unsent import LeftUnsent
from services.intake.resends import Resends
from services.intake.tracking import Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import FakeStore, rate, stored, update
from tests.unit.test_intake_resends import PAUSE_S, running, until


def intake(store: FakeStore) -> tuple[Tracker, RecordingPublisher, LeftUnsent]:
    """One intake process over the shared store: its tracker, its broker and its sweep (notes
    count as left after no time at all here)."""
    publisher, resends = RecordingPublisher(), Resends(first_pause_s=PAUSE_S)
    tracker = Tracker(store, store, publisher, Topology("t"), resends)
    senders = {"status": tracker.changes.send_latest, "rating": tracker.send_rating}
    return tracker, publisher, LeftUnsent(store, resends, senders, stale_s=0.0)


async def accepted_then_stopped(store: FakeStore, change: str) -> None:
    """An intake accepts a change (or rating) and stops before its broker confirms: the call
    fails and the process, with its resends, is gone."""
    first, publisher, _ = intake(store)
    publisher.down = True
    call = update(first, Status.IN_PROGRESS) if change == "status" else rate(first, 4)
    with pytest.raises(Unavailable):
        await call
    assert publisher.sent == []


@pytest.mark.parametrize("change", ["status", "rating"])
async def test_a_change_left_unsent_by_a_stopped_intake_is_sent_by_another(change: str) -> None:
    done = Status.COMPLETED if change == "rating" else Status.RECORDED
    store = FakeStore(stored(done))
    await accepted_then_stopped(store, change)
    assert list(store.unsent) == [f"{change} T1"]

    _, publisher, sweep = intake(store)
    assert await sweep.sweep() == 1
    async with running(sweep.resends):
        await until(lambda: len(sweep.resends) == 0)
    if change == "status":
        [sent] = publisher.decoded(events_pb2.TransactionStatusChanged)
        assert (sent.status, sent.sequence) == (common_pb2.TRANSACTION_STATUS_IN_PROGRESS, 1)
        assert store.changes["T1"]["confirmed"]
    else:
        [sent] = publisher.decoded(events_pb2.TransactionRated)
        assert sent.rating == 4
    assert store.unsent == {}


async def test_without_the_sweep_nothing_sends_it() -> None:
    # What the test above guards against: the other intake's own resends know nothing of it.
    store = FakeStore(stored())
    await accepted_then_stopped(store, "status")
    _, publisher, sweep = intake(store)
    async with running(sweep.resends):
        await asyncio.sleep(10 * PAUSE_S)
    assert publisher.sent == []


async def test_changes_seen_published_leave_no_note() -> None:
    store = FakeStore(stored())
    tracker, publisher, sweep = intake(store)
    await update(tracker, Status.IN_PROGRESS)
    await update(tracker, Status.COMPLETED)
    store.docs["T1"] = stored(Status.COMPLETED)  # as the worker applies it
    await rate(tracker, 5)
    assert len(publisher.sent) == 3
    assert store.unsent == {}
    assert await sweep.sweep() == 0


async def test_a_note_of_a_change_that_was_sent_costs_a_read_and_is_removed() -> None:
    # The process stopped after the confirm and before removing its note.
    store = FakeStore(stored())
    tracker, publisher, sweep = intake(store)
    await update(tracker, Status.IN_PROGRESS)
    await store.note_unsent("status T1", 1)
    assert await sweep.sweep() == 1
    async with running(sweep.resends):
        await until(lambda: len(sweep.resends) == 0)
    assert len(publisher.sent) == 1  # not sent again
    assert store.unsent == {}


async def test_a_note_written_again_after_the_sweep_read_it_stays() -> None:
    # A newer change of the same transaction is being accepted by a live intake: its note is
    # that intake's to remove once it sees the change published.
    store = FakeStore(stored())
    await store.note_unsent("status T1", 1)
    _, _, sweep = intake(store)
    assert await sweep.sweep() == 1
    await store.note_unsent("status T1", 2)
    async with running(sweep.resends):
        await until(lambda: len(sweep.resends) == 0)
    assert store.unsent["status T1"][1] == 2


async def test_fresh_notes_are_left_to_the_intake_that_wrote_them() -> None:
    store = FakeStore(stored())
    await accepted_then_stopped(store, "status")
    tracker, _, _ = intake(store)
    patient = LeftUnsent(store, tracker.resends, {}, stale_s=60.0)
    assert await patient.sweep() == 0
    assert patient.oldest_s == 0.0
    # The age of the oldest note left is reported, whichever intake wrote it.
    store.unsent["status T1"] = (datetime.now(UTC) - timedelta(minutes=5), 1)
    assert await patient.sweep() == 0  # no sender for it here
    assert 299 < patient.oldest_s < 400
