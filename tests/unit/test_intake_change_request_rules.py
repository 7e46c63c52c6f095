"""Status changes and cancellations under a client request id: a retry gets the first answer
whatever happened since, another change under the same id is refused, and concurrent retries
are accepted once and sent once."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.codes import MAX_CODE_LENGTH, request_id_violations
from sanad.domain.submissions import request_key
from sanad.domain.transactions import Status
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed, Unavailable
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import events_pb2
from services.intake.change_requests import (
    answer_of,
    answer_record,
    awaits_confirm,
    change_key,
)
from services.intake.sending import Sends
from services.intake.tracking import Change, Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import CENTRE, T0, FakeStore, stored, tracker
from tests.unit.test_intake_tracking_replays import changes, unconfirmed_tracker


async def update(
    t: Tracker, status: Status, request_id: str, note: str = "note", actor: str = "agency"
) -> Change:
    return await t.update_status(
        "T1",
        status,
        note,
        actor=actor,
        identity=DEV_ADMIN,
        deadline=Deadline(5.0),
        request_id=request_id,
    )


def test_a_record_answers_only_the_change_it_was_made_for() -> None:
    first = Change(Status.COMPLETED, T0, "agency", "issued")
    record = answer_record("k", "T1", first, 3)
    same = {"transaction_id": "T1", "status": Status.COMPLETED, "note": "issued"}
    assert answer_of(record, "r-1", **same) == first
    for other in (
        {"transaction_id": "T2"},
        {"status": Status.REJECTED},
        {"note": "issued late"},
    ):
        with pytest.raises(AlreadyExists):
            answer_of(record, "r-1", **{**same, **other})  # type: ignore[arg-type]


def test_change_request_ids_are_per_caller_and_apart_from_submission_ids() -> None:
    assert change_key("rop", "r-1") == change_key("rop", "r-1")
    assert change_key("rop", "r-1") != change_key("mol", "r-1")
    assert change_key("rop", "r-1") not in {request_key("rop", "r-1"), request_key("change", "")}
    assert request_id_violations("r" * MAX_CODE_LENGTH) == []
    assert [v.field for v in request_id_violations("r" * (MAX_CODE_LENGTH + 1))] == ["request_id"]


def test_only_the_latest_unconfirmed_change_may_be_unsent() -> None:
    record = {"sequence": 2}
    assert awaits_confirm(record, {"sequence": 2, "confirmed": False})
    assert not awaits_confirm(record, {"sequence": 2, "confirmed": True})
    assert not awaits_confirm(record, {"sequence": 3, "confirmed": False})  # followed: it was sent
    assert not awaits_confirm(record, None)


async def test_a_retry_after_a_confirmed_change_gets_the_first_answer_sent_once() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    first = await update(t, Status.COMPLETED, "r-1")
    assert await update(t, Status.COMPLETED, "r-1") == first  # not "COMPLETED to COMPLETED"
    assert len(changes(publisher)) == 1
    with pytest.raises(PreconditionFailed):  # a new request id is a new change
        await update(t, Status.COMPLETED, "r-2")


async def test_a_retry_after_later_changes_by_others_still_gets_the_first_answer() -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    first = await update(t, Status.IN_PROGRESS, "r-1")
    await update(t, Status.AWAITING_DOCUMENTS, "r-2", actor="other-agency")
    await update(t, Status.IN_PROGRESS, "")
    assert await update(t, Status.IN_PROGRESS, "r-1") == first
    assert [sequence for _, sequence, *_ in changes(publisher)] == [1, 2, 3]


async def test_a_request_id_reused_for_another_change_is_already_exists() -> None:
    other = stored(Status.IN_PROGRESS, _id="T2")
    t, publisher = tracker(stored(Status.IN_PROGRESS), other)
    await update(t, Status.AWAITING_DOCUMENTS, "r-1")
    for status, note in ((Status.AWAITING_AGENCY, "note"), (Status.AWAITING_DOCUMENTS, "x")):
        with pytest.raises(AlreadyExists):
            await update(t, status, "r-1", note=note)
    with pytest.raises(AlreadyExists):
        await t.update_status(
            "T2",
            Status.AWAITING_DOCUMENTS,
            "note",
            actor="agency",
            identity=DEV_ADMIN,
            deadline=Deadline(5.0),
            request_id="r-1",
        )
    with pytest.raises(AlreadyExists):  # cancellations and updates share a caller's ids
        await t.cancel("T1", "note", "agency", DEV_ADMIN, Deadline(5.0), request_id="r-1")
    await update(t, Status.IN_PROGRESS, "r-1", actor="other-agency")  # its own id
    assert len(changes(publisher)) == 2


async def test_an_overlong_request_id_is_invalid_on_its_field() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    with pytest.raises(Invalid) as caught:
        await update(t, Status.COMPLETED, "r" * (MAX_CODE_LENGTH + 1))
    assert [v.field for v in caught.value.violations] == ["request_id"]
    with pytest.raises(Invalid) as caught:
        await t.cancel("T1", "x" * 1001, "c", CENTRE, Deadline(5.0), request_id="r" * 129)
    assert sorted(v.field for v in caught.value.violations) == ["reason", "request_id"]
    assert publisher.sent == []


async def test_a_retry_after_a_failed_publish_sends_the_change_and_gets_the_first_answer() -> None:
    t, store, publisher = unconfirmed_tracker(stored(Status.IN_PROGRESS))
    publisher.unconfirmed = True  # reached the broker, the confirm timed out
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED, "r-1")
    publisher.unconfirmed = False
    first = await update(t, Status.COMPLETED, "r-1")
    assert first.time == store.changes["T1"]["time"]
    assert store.changes["T1"]["confirmed"] is True
    assert await update(t, Status.COMPLETED, "r-1") == first  # confirmed: nothing more to send
    sent = changes(publisher)
    assert len(sent) == 2
    assert sent[0] == sent[1]  # the same change id: the worker applies it once


async def test_concurrent_retries_of_one_request_id_are_accepted_and_sent_once() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    answers = await asyncio.gather(*(update(t, Status.COMPLETED, "r-1") for _ in range(8)))
    assert len(set(answers)) == 1
    assert len(changes(publisher)) == 1


async def test_a_cancel_retried_under_its_request_id_gets_its_first_answer() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))

    async def cancel(reason: str) -> Change:
        return await t.cancel("T1", reason, "centre", CENTRE, Deadline(5.0), request_id="c-1")

    first = await cancel("asked")
    assert first.status is Status.CANCELLED
    assert await cancel("asked") == first
    with pytest.raises(AlreadyExists):
        await cancel("asked again")
    assert len(publisher.decoded(events_pb2.TransactionStatusChanged)) == 1


async def test_an_answer_is_remembered_only_with_its_accepted_change() -> None:
    store, publisher = FakeStore(stored(Status.IN_PROGRESS)), RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"))
    store.changes["T1"] = {"sequence": 5, "status": "COMPLETED", "time": T0, "confirmed": True}
    with pytest.raises(PreconditionFailed):  # refused: nothing remembered, the id stays free
        await update(t, Status.COMPLETED, "r-1")
    assert store.answers == {}
    store.changes["T1"].update(status="IN_PROGRESS", time=T0 + timedelta(hours=1))
    change = await update(t, Status.COMPLETED, "r-1")
    (answer,) = store.answers.values()
    assert (answer["sequence"], answer["time"]) == (6, change.time)
    assert len(publisher.sent) == 1


async def test_one_publish_runs_per_change_and_its_outcome_is_every_waiters() -> None:
    sending, started = Sends(), []
    release = asyncio.Event()
    failing = True

    async def publish() -> None:
        started.append(1)
        await release.wait()
        if failing:
            raise Unavailable("broker down")

    waiters = [asyncio.create_task(sending.send("c1", publish, None)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable):  # a waiter out of time leaves; the publish runs on
        await sending.send("c1", publish, 0.01)
    release.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert (len(started), len(sending)) == (1, 0)
    failing = False
    await sending.send("c1", publish, None)  # failed before: published again
    await sending.send("c1", publish, None)  # confirmed here: not again
    assert len(started) == 2


class HeldPublisher(RecordingPublisher):
    """Confirms every publish when `release` is set; a publish given a limit that ends first
    raises Unavailable, as the real publisher does when its confirm is late."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def publish(self, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> None:
        await super().publish(*args, timeout_s=timeout_s, **kwargs)
        self.started.set()
        try:
            async with asyncio.timeout(timeout_s):
                await self.release.wait()
        except TimeoutError as error:
            raise Unavailable("the broker did not confirm in time; retry later") from error


async def test_a_shared_publish_is_not_bound_by_the_deadline_of_the_call_that_started_it() -> None:
    store, publisher = FakeStore(stored(Status.IN_PROGRESS)), HeldPublisher()
    t = Tracker(store, store, publisher, Topology("t"))

    async def call(seconds: float) -> Change:
        return await t.update_status(
            "T1",
            Status.COMPLETED,
            "note",
            actor="agency",
            identity=DEV_ADMIN,
            deadline=Deadline(seconds),
            request_id="r-1",
        )

    hasty = asyncio.create_task(call(0.05))
    await publisher.started.wait()
    patient = asyncio.create_task(call(30.0))  # a retry: waits for the publish already running
    with pytest.raises(Unavailable):
        await hasty
    publisher.release.set()
    change = await patient
    assert change.status is Status.COMPLETED
    assert store.changes["T1"]["confirmed"] is True
    assert len(changes(publisher)) == 1


def test_confirmed_changes_are_remembered_up_to_a_bound() -> None:
    sending = Sends(remembered=2)

    async def publish() -> None:
        published.append(1)

    async def run() -> None:
        for change_id in ("c1", "c2", "c3", "c1"):
            await sending.send(change_id, publish, None)

    published: list[int] = []
    asyncio.run(run())
    assert len(published) == 4  # c1 was forgotten when c3 was confirmed
