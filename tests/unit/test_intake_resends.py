"""An accepted status change or rating whose publish failed is sent again in the background
until the broker confirms it, without waiting for a next call on its transaction."""

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.errors import Unavailable
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import events_pb2
from services.intake.resends import Resends
from services.intake.tracking import Tracker
from tests.unit.fakes import RecordingPublisher
from tests.unit.intake_tracking_fakes import FakeStore, rate, stored, update

PAUSE_S = 0.01


@asynccontextmanager
async def running(resends: Resends) -> AsyncIterator[Resends]:
    task = asyncio.create_task(resends.run())
    try:
        yield resends
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(PAUSE_S / 2)


def failing(times: int, calls: list[float]) -> Callable[[], Awaitable[None]]:
    async def send() -> None:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise Unavailable("the message broker is unavailable; retry later")

    return send


async def test_a_failed_send_is_tried_again_after_pauses_that_double_until_it_succeeds() -> None:
    calls: list[float] = []
    async with running(Resends(first_pause_s=PAUSE_S)) as resends:
        added = time.monotonic()
        resends.add("status T1", failing(2, calls))
        await until(lambda: len(resends) == 0)
        await asyncio.sleep(8 * PAUSE_S)
    assert len(calls) == 3  # two failures, one success, then nothing more
    waits = [b - a for a, b in zip([added, *calls], calls, strict=False)]
    pauses = [PAUSE_S, 2 * PAUSE_S, 4 * PAUSE_S]  # each at least its pause: never early
    assert all(wait >= pause for wait, pause in zip(waits, pauses, strict=True)), waits


async def test_a_transaction_already_waiting_keeps_its_turn_and_its_send() -> None:
    first: list[float] = []
    second: list[float] = []
    async with running(Resends(first_pause_s=PAUSE_S)) as resends:
        resends.add("status T1", failing(0, first))
        resends.add("status T1", failing(0, second))
        await until(lambda: len(resends) == 0)
    assert (len(first), len(second)) == (1, 0)


async def test_beyond_the_limit_the_oldest_is_given_up() -> None:
    sent: list[str] = []

    def send(key: str) -> Callable[[], Awaitable[None]]:
        async def publish() -> None:
            sent.append(key)

        return publish

    resends = Resends(limit=2, first_pause_s=PAUSE_S)
    for key in ("a", "b", "c"):
        resends.add(key, send(key))
    assert len(resends) == 2
    async with running(resends):
        await until(lambda: len(resends) == 0)
    assert sorted(sent) == ["b", "c"]


def tracker_with_resends() -> tuple[Tracker, FakeStore, RecordingPublisher]:
    store, publisher = FakeStore(stored(Status.IN_PROGRESS)), RecordingPublisher()
    resends = Resends(first_pause_s=PAUSE_S)
    return Tracker(store, store, publisher, Topology("t"), resends), store, publisher


async def test_a_change_accepted_while_the_broker_was_down_is_sent_once_it_is_back() -> None:
    t, store, publisher = tracker_with_resends()
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED)
    assert store.changes["T1"]["status"] == "COMPLETED"  # accepted: judged against from now on
    async with running(t.resends):
        await asyncio.sleep(3 * PAUSE_S)
        assert len(t.resends) == 1  # still down: waiting
        publisher.down = False
        await until(lambda: len(t.resends) == 0)
    # Sent with no other call on the transaction, and noted as confirmed.
    [event] = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert (event.transaction_id, event.sequence) == ("T1", 1)
    assert store.changes["T1"]["confirmed"] is True


async def test_a_change_whose_caller_ran_out_of_time_is_sent() -> None:
    # The broker is slow: the call's deadline passes before the confirm; the publish runs on,
    # and the resend notes it confirmed.
    t, store, publisher = tracker_with_resends()
    confirm = asyncio.Event()
    publish = publisher.publish

    async def slow(*args: object, **kwargs: object) -> None:
        await confirm.wait()
        await publish(*args, **kwargs)  # type: ignore[arg-type]

    publisher.publish = slow  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await t.update_status(
            "T1",
            Status.COMPLETED,
            "",
            actor="agency",
            identity=DEV_ADMIN,
            deadline=Deadline(0.05),
        )
    async with running(t.resends):
        confirm.set()
        await until(lambda: store.changes["T1"].get("confirmed") is True)
    assert len(publisher.decoded(events_pb2.TransactionStatusChanged)) == 1


async def test_a_rating_claimed_while_the_broker_was_down_is_sent_once_it_is_back() -> None:
    store, publisher = FakeStore(stored(Status.COMPLETED)), RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"), Resends(first_pause_s=PAUSE_S))
    publisher.down = True
    with pytest.raises(Unavailable):
        await rate(t, 4)
    publisher.down = False
    async with running(t.resends):
        await until(lambda: len(t.resends) == 0)
    [event] = publisher.decoded(events_pb2.TransactionRated)
    assert (event.transaction_id, event.rating) == ("T1", 4)


async def test_a_change_accepted_while_its_transactions_try_runs_is_tried_after_it() -> None:
    # The try reads change 1 and is slow to answer; meanwhile a caller sends 1, accepts 2, and
    # 2's publish fails. Its entry was waiting (the try's), so it must be tried once more, not
    # dropped with the try's success (review of this session: 2 was left with no entry).
    t, store, publisher = tracker_with_resends()
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.AWAITING_DOCUMENTS)  # change 1, unsent: waiting
    publisher.down = False
    in_resend: contextvars.ContextVar[bool] = contextvars.ContextVar("in_resend", default=False)
    send_latest, read = t.changes.send_latest, store.latest_change
    reading, answer = asyncio.Event(), asyncio.Event()

    async def resend(transaction_id: str) -> None:
        in_resend.set(True)
        await send_latest(transaction_id)

    async def late_read(transaction_id: str, timeout_s: float | None = None) -> Any:
        found = await read(transaction_id, timeout_s)
        if in_resend.get() and not answer.is_set():
            reading.set()
            await answer.wait()  # read as change 1, answered late
        return found

    t.changes.send_latest = resend  # type: ignore[method-assign]
    store.latest_change = late_read  # type: ignore[method-assign]
    async with running(t.resends):
        await reading.wait()
        publish = publisher.publish

        async def second_fails(*args: Any, **kwargs: Any) -> None:
            if publisher.sent:
                raise Unavailable("the broker refused the message")
            await publish(*args, **kwargs)

        publisher.publish = second_fails  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await update(t, Status.IN_PROGRESS)  # sends 1, accepts 2, 2's publish fails
        publisher.publish = publish  # type: ignore[method-assign]
        answer.set()
        await until(lambda: store.changes["T1"].get("confirmed") is True)
    assert [e.sequence for e in publisher.decoded(events_pb2.TransactionStatusChanged)][-1] == 2


async def test_a_change_whose_caller_was_cancelled_after_its_commit_is_sent() -> None:
    # gRPC cancels the handler when the caller goes: the change was accepted, its publish
    # had not answered yet (and then failed).
    t, store, publisher = tracker_with_resends()
    publish = publisher.publish
    hang = asyncio.Event()

    async def first_fails_late(*args: Any, **kwargs: Any) -> None:
        if not hang.is_set():
            await hang.wait()
            raise Unavailable("the broker did not confirm")
        await publish(*args, **kwargs)

    publisher.publish = first_fails_late  # type: ignore[method-assign]
    call = asyncio.create_task(
        t.update_status(
            "T1", Status.COMPLETED, "", actor="a", identity=DEV_ADMIN, deadline=Deadline(None)
        )
    )
    await until(lambda: "T1" in store.changes)
    await asyncio.sleep(PAUSE_S)
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert len(t.resends) == 1
    hang.set()
    async with running(t.resends):
        await until(lambda: store.changes["T1"].get("confirmed") is True)
    assert len(publisher.decoded(events_pb2.TransactionStatusChanged)) == 1


async def test_the_oldest_wait_is_told_and_a_try_cancelled_from_elsewhere_waits_its_pause() -> None:
    # A shared publish cancelled under a try is a failed try: tried again after its pause, not
    # at once in a loop, and the loop goes on.
    now = [100.0]
    resends = Resends(first_pause_s=1.0, clock=lambda: now[0])
    tries: list[float] = []

    async def cancelled_once() -> None:
        tries.append(now[0])
        if len(tries) == 1:
            raise asyncio.CancelledError

    async def nothing() -> None:
        return None

    resends.add("status T1", cancelled_once)
    now[0] = 130.0
    assert resends.oldest_s() == 30.0
    async with running(resends):
        await until(lambda: len(tries) == 1)
        await asyncio.sleep(5 * PAUSE_S)
        assert tries == [130.0]  # its pause (2 s) has not passed on this clock
        now[0] = 132.0
        resends.add("status T2", nothing)  # wakes the loop
        await until(lambda: len(tries) == 2)
        await until(lambda: len(resends) == 1)  # T1 done; T2 waits for its turn
    assert tries == [130.0, 132.0]
