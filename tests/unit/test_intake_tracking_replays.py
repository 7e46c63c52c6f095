"""Tracking replays: a retry of a status change or rating whose publish failed is answered as
the first call would have been, not judged as a new change against itself."""

from datetime import UTC
from typing import Any

import pytest

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.errors import AlreadyExists, PreconditionFailed, Unavailable
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import events_pb2
from services.intake.tracking import Change, Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import CENTRE, FakeStore, rate, stored, tracker, update


class UnconfirmedPublisher(RecordingPublisher):
    """Takes every publish, but while `unconfirmed` answers as a confirm that timed out: the
    message reached the broker (and may reach the worker) and the caller got UNAVAILABLE."""

    def __init__(self) -> None:
        super().__init__()
        self.unconfirmed = False

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        await super().publish(*args, **kwargs)
        if self.unconfirmed:
            raise Unavailable("the broker did not confirm in time; retry later")


def unconfirmed_tracker(doc: dict[str, Any]) -> tuple[Tracker, FakeStore, UnconfirmedPublisher]:
    store, publisher = FakeStore(doc), UnconfirmedPublisher()
    return Tracker(store, store, publisher, Topology("t")), store, publisher


def changes(publisher: RecordingPublisher) -> list[tuple[str, int, int, str, str]]:
    return [
        (e.change_id, e.sequence, e.status, e.actor, e.note)
        for e in publisher.decoded(events_pb2.TransactionStatusChanged)
    ]


async def test_a_retried_change_whose_publish_failed_is_answered_as_its_first_call() -> None:
    t, store, publisher = unconfirmed_tracker(stored(Status.RECORDED))
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED)
    publisher.down = False
    change = await update(t, Status.COMPLETED)  # the retry: not "COMPLETED to COMPLETED"
    record = store.changes["T1"]
    assert change == Change(Status.COMPLETED, record["time"], "agency", "note")
    assert record["confirmed"] is True
    ((_, sequence, *rest),) = changes(publisher)  # the accepted change, sent once, not a new one
    assert (sequence, *rest[1:]) == (1, "agency", "note")
    # Confirmed since (a resend in the background, a second after the failure): the caller
    # never saw it, and a repeat is still the same change, answered the same.
    assert await update(t, Status.COMPLETED) == change
    assert len(changes(publisher)) == 1


async def test_a_retried_change_the_worker_already_applied_is_answered_ok() -> None:
    doc = stored(Status.IN_PROGRESS)
    t, store, publisher = unconfirmed_tracker(doc)
    publisher.unconfirmed = True
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED)
    doc["status"] = Status.COMPLETED.value  # the worker applied it; the confirm never came
    publisher.unconfirmed = False
    change = await update(t, Status.COMPLETED)
    assert (change.status, change.time) == (Status.COMPLETED, store.changes["T1"]["time"])
    first, again = changes(publisher)
    assert first == again  # the same change id: the worker ignores the repeat


async def test_a_retried_cancel_whose_publish_failed_is_answered_ok() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))

    async def cancel(reason: str) -> Change:
        return await t.cancel("T1", reason, "centre", CENTRE, Deadline(None))

    publisher.down = True
    with pytest.raises(Unavailable):
        await cancel("asked")
    publisher.down = False
    first = await cancel("asked")
    assert first.status is Status.CANCELLED
    assert await cancel("asked") == first  # confirmed since: the same cancel, answered the same
    with pytest.raises(PreconditionFailed):  # another reason is another change
        await cancel("changed my mind")
    assert len(changes(publisher)) == 1


@pytest.mark.parametrize(("actor", "note"), [("agency", "another note"), ("other-agency", "note")])
async def test_a_different_change_after_an_unconfirmed_one_is_judged_against_it(
    actor: str, note: str
) -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.IN_PROGRESS)
    publisher.down = False
    with pytest.raises(PreconditionFailed):  # IN_PROGRESS to IN_PROGRESS, by someone else
        await t.update_status(
            "T1", Status.IN_PROGRESS, note, actor=actor, identity=DEV_ADMIN, deadline=Deadline(5.0)
        )
    assert [(s, a, n) for _, s, _, a, n in changes(publisher)] == [(1, "agency", "note")]


async def test_a_retried_rating_the_worker_already_applied_is_answered_ok() -> None:
    doc = stored(Status.COMPLETED)
    t, _, publisher = unconfirmed_tracker(doc)
    publisher.unconfirmed = True
    with pytest.raises(Unavailable):
        await rate(t, 4, CENTRE)
    (event,) = publisher.decoded(events_pb2.TransactionRated)
    doc.update(rating=4, rating_time=event.time.ToDatetime(tzinfo=UTC))  # applied, unconfirmed
    publisher.unconfirmed = False
    await rate(t, 4, CENTRE)  # not ALREADY_EXISTS: the claimed rating is the one applied
    with pytest.raises(AlreadyExists):
        await rate(t, 5, CENTRE)
    assert len(publisher.sent) == 1  # nothing more to send once applied


async def test_a_rating_applied_without_this_claim_is_not_taken_for_a_repeat() -> None:
    doc = stored(Status.COMPLETED)
    t, publisher = tracker(doc)
    publisher.down = True
    with pytest.raises(Unavailable):
        await rate(t, 4, CENTRE)  # claimed, never published
    doc.update(rating=4, rating_time=doc["submit_time"])  # rated by a batch meanwhile
    publisher.down = False
    with pytest.raises(AlreadyExists):
        await rate(t, 4, CENTRE)
    assert publisher.sent == []
