"""SubmitTransactions' pipeline: answers in order, bounded in flight, limited in length."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial

import pytest

from sanad.deadline import Deadline
from sanad.domain.submissions import Channel, Submission
from sanad.errors import Invalid, RateLimited, Unavailable, Violation
from sanad.security import audit_items
from sanad.security.identity import DEV_ADMIN, Identity
from sanad.security.limits import RateLimiter
from services.intake.operations import Accepted
from services.intake.streaming import (
    ItemResult,
    StreamLimits,
    Streams,
    held_bytes,
    submit_stream,
)
from tests.unit.test_security_audit_items import item_audit
from tests.unit.waiting import until

NOW = datetime(2024, 6, 1, tzinfo=UTC)


class SlowIntake:
    """Confirms after a delay that shrinks with the index, so later items finish first."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.peak = 0

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            index = int(submission.request_id)
            await asyncio.sleep(self.delay_s * (1 + (7 - index % 7) / 7))
            if submission.fee_baisa < 0:
                raise Invalid([Violation("fee_baisa", "must not be negative")])
            if submission.civil_number == "down":
                raise Unavailable("the message broker is unavailable; retry later")
            return Accepted(f"T{index}", NOW)
        finally:
            self.in_flight -= 1


def item(index: int, fee: int = 5000, civil: str = "12345678") -> Submission:
    return Submission(str(index), "C1", "ROP-VISA", Channel.COUNTER, fee, civil)


async def items_of(submissions: list[Submission]) -> AsyncIterator[Submission]:
    for submission in submissions:
        yield submission


def no_charge() -> None:
    """No rate limit."""


async def run(
    intake: SlowIntake,
    submissions: list[Submission],
    limits: StreamLimits,
    charge: Callable[[], None] = no_charge,
) -> list[ItemResult]:
    stream = submit_stream(
        intake,  # type: ignore[arg-type]
        items_of(submissions),
        caller="tester",
        identity=DEV_ADMIN,
        deadline=Deadline(5.0),
        limits=limits,
        charge=charge,
    )
    return [result async for result in stream]


async def test_every_item_is_answered_in_order_with_its_own_outcome() -> None:
    submissions = [item(n, fee=-1 if n % 20 == 3 else 5000) for n in range(200)]
    submissions[50] = item(50, civil="down")
    results = await run(SlowIntake(0.005), submissions, StreamLimits(32, 1000))
    assert [r.index for r in results] == list(range(200))
    assert [r.request_id for r in results] == [str(n) for n in range(200)]
    for r in results:
        if r.index % 20 == 3:
            assert isinstance(r.error, Invalid)
        elif r.index == 50:
            assert isinstance(r.error, Unavailable)
        else:
            assert r.accepted is not None
            assert r.accepted.transaction_id == f"T{r.index}"


async def test_confirms_overlap_but_never_exceed_the_in_flight_limit() -> None:
    intake = SlowIntake(0.02)
    results = await run(intake, [item(n) for n in range(200)], StreamLimits(16, 1000))
    assert len(results) == 200
    # Pipelined: 16 confirms awaited at once (one after another would peak at 1), never more.
    assert intake.peak == 16


class HoldingIntake(SlowIntake):
    """Tracks the bytes its items in flight hold (streaming.held_bytes)."""

    def __init__(self) -> None:
        super().__init__(0.01)
        self.holding = self.peak_bytes = 0

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        size = held_bytes(submission)
        self.holding += size
        self.peak_bytes = max(self.peak_bytes, self.holding)
        try:
            return await super().submit(submission, caller, identity, deadline)
        finally:
            self.holding -= size


def large(index: int, length: int) -> Submission:
    """An item whose centre id alone is `length` characters (refused by field in service)."""
    return Submission(str(index), "C" * length, "ROP-VISA", Channel.COUNTER, 5000, "12345678")


async def test_items_in_flight_hold_at_most_the_byte_limit_together() -> None:
    intake = HoldingIntake()
    limit = 10 * held_bytes(large(0, 10_000))
    results = await run(
        intake, [large(n, 10_000) for n in range(60)], StreamLimits(32, 1000, limit)
    )
    assert [r.index for r in results] == list(range(60))
    # Ten such items fill the room: pipelined up to it (32 by count), never past it.
    assert intake.peak == 10
    assert intake.peak_bytes <= limit


async def test_an_item_larger_than_the_byte_limit_goes_alone() -> None:
    intake = HoldingIntake()
    submissions = [item(0), large(1, 50_000), item(2), item(3)]
    results = await run(intake, submissions, StreamLimits(32, 1000, 1_000))
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert all(r.accepted is not None for r in results)
    assert intake.peak_bytes == held_bytes(submissions[1])


async def test_a_stream_longer_than_the_limit_is_answered_then_refused() -> None:
    answered: list[ItemResult] = []
    stream = submit_stream(
        SlowIntake(0.001),  # type: ignore[arg-type]
        items_of([item(n) for n in range(30)]),
        caller="tester",
        identity=DEV_ADMIN,
        deadline=Deadline(None),
        limits=StreamLimits(4, 10),
        charge=no_charge,
    )

    async def drain() -> None:
        async for result in stream:
            answered.append(result)

    with pytest.raises(RateLimited):
        await drain()
    assert [r.index for r in answered] == list(range(10))


async def test_a_caller_that_goes_away_leaves_no_task_behind() -> None:
    intake = SlowIntake(0.05)
    stream = submit_stream(
        intake,  # type: ignore[arg-type]
        items_of([item(n) for n in range(100)]),
        caller="tester",
        identity=DEV_ADMIN,
        deadline=Deadline(None),
        limits=StreamLimits(8, 1000),
        charge=no_charge,
    )
    first = await anext(stream)
    assert first.index == 0
    await stream.aclose()
    await asyncio.sleep(0.01)
    assert intake.in_flight == 0


async def test_items_over_the_callers_rate_are_refused_one_by_one_and_not_submitted() -> None:
    intake = CountingIntake()
    limiter = RateLimiter(rate_per_s=0.001, burst=3, clock=lambda: 0.0)
    results = await run(
        intake,
        [item(n) for n in range(8)],
        StreamLimits(4, 1000),
        charge=partial(limiter.take, "centre:abraj@C1"),
    )
    assert [r.index for r in results] == list(range(8))
    assert [r.accepted is not None for r in results] == [True] * 3 + [False] * 5
    assert all(isinstance(r.error, RateLimited) for r in results[3:])
    assert sorted(intake.submitted) == ["0", "1", "2"]


class CountingIntake(SlowIntake):
    """Records which items reached submit()."""

    def __init__(self) -> None:
        super().__init__(0.001)
        self.submitted: list[str] = []

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        self.submitted.append(submission.request_id)
        return await super().submit(submission, caller, identity, deadline)


class HeldIntake:
    """Accepts the request ids it is told to at once; holds every other item until cancelled."""

    def __init__(self, accepted: frozenset[str] = frozenset()) -> None:
        self.accepted = accepted
        self.in_flight = 0

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        if submission.request_id in self.accepted:
            return Accepted(f"T{submission.request_id}", NOW)
        self.in_flight += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.in_flight -= 1
        raise AssertionError("held until cancelled")


async def arriving(submissions: list[Submission]) -> AsyncIterator[Submission]:
    """Items as a client's arrive: one at a time, the loop running between them."""
    for submission in submissions:
        yield submission
        await asyncio.sleep(0)


def held_stream(intake: HeldIntake, items: AsyncIterator[Submission]) -> AsyncIterator[ItemResult]:
    return submit_stream(
        intake,  # type: ignore[arg-type]
        items,
        caller="tester",
        identity=DEV_ADMIN,
        deadline=Deadline(None),
        limits=StreamLimits(8, 1000),
        charge=no_charge,
    )


async def test_items_abandoned_when_the_call_is_cancelled_end_their_events_cancelled() -> None:
    intake, (audit, log) = HeldIntake(), item_audit()

    async def call() -> None:
        audit_items.begin(audit)  # as the security interceptor does for the call
        async for _ in held_stream(intake, arriving([item(n) for n in range(4)])):
            raise AssertionError("no item is answered")

    running = asyncio.create_task(call())
    await until(lambda: intake.in_flight == 4)
    running.cancel()  # gRPC cancels the handler: the caller went away, or its deadline passed
    with pytest.raises(asyncio.CancelledError):
        await running

    # Counted for the stream's own event once the handler has ended, each with its own event.
    assert audit.outcomes == {"CANCELLED": 4}
    assert sorted((e.target["request_id"], e.outcome) for e in log.events) == [
        (str(n), "CANCELLED") for n in range(4)
    ]
    assert intake.in_flight == 0


@pytest.mark.parametrize("started", [True, False], ids=["started", "not started yet"])
async def test_items_abandoned_when_the_stream_is_closed_at_its_answer_are_counted_cancelled(
    started: bool,
) -> None:
    outcomes, ended = await closed_at_first_answer(started, settled_meanwhile=False)

    assert outcomes == {"OK": 1, "CANCELLED": 3}
    # An item whose task never ran submitted nothing: it is counted, with no event of its own.
    assert ended == [("0", "OK")] + ([(str(n), "CANCELLED") for n in (1, 2, 3)] if started else [])


async def closed_at_first_answer(
    started: bool, *, settled_meanwhile: bool
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A stream of 4 items closed once item 0 is answered, items 1-3 held (started) or not yet
    run; with settled_meanwhile, the call's event settles the items at the same time. The
    items' counts by outcome, and each event's (request id, outcome)."""
    intake, (audit, log) = HeldIntake(accepted=frozenset({"0"})), item_audit()

    async def call() -> None:
        audit_items.begin(audit)
        # Read all at once, the items' tasks have not run yet when the first answer leaves.
        stream = held_stream(intake, (arriving if started else items_of)(items(4)))
        assert (await anext(stream)).index == 0
        if started:
            await until(lambda: intake.in_flight == 3)
        # gRPC closes the handler at its yield when the caller goes while an answer is sent,
        # maybe while the interceptor settles the call's items for its event.
        if settled_meanwhile:
            await asyncio.gather(stream.aclose(), audit.settle())
        else:
            await stream.aclose()

    await asyncio.create_task(call())
    assert intake.in_flight == 0
    return dict(audit.outcomes), sorted((e.target["request_id"], e.outcome) for e in log.events)


def items(count: int) -> list[Submission]:
    return [item(n) for n in range(count)]


@pytest.mark.parametrize("started", [True, False], ids=["started", "not started yet"])
async def test_a_stream_closed_by_its_handler_and_its_calls_event_at_once_counts_each_item_once(
    started: bool,
) -> None:
    outcomes, ended = await closed_at_first_answer(started, settled_meanwhile=True)

    assert outcomes == {"OK": 1, "CANCELLED": 3}
    # Each item ended once: its task ran and wrote its event, or never ran and wrote none.
    assert len({request_id for request_id, _ in ended}) == len(ended)
    if started:
        assert ended == [("0", "OK")] + [(str(n), "CANCELLED") for n in (1, 2, 3)]


async def kept_open(
    submissions: list[Submission], ended: asyncio.Event
) -> AsyncIterator[Submission]:
    """A caller's items, then nothing more, the stream kept open (never half-closed)."""
    for submission in submissions:
        yield submission
    try:
        await asyncio.Event().wait()
    finally:
        ended.set()


def open_stream(
    intake: object, items: AsyncIterator[Submission], streams: Streams
) -> AsyncIterator[ItemResult]:
    return submit_stream(
        intake,  # type: ignore[arg-type]
        items,
        caller="tester",
        identity=DEV_ADMIN,
        deadline=Deadline(None),
        limits=StreamLimits(8, 1000),
        charge=no_charge,
        streams=streams,
    )


async def test_a_stream_kept_open_at_the_drain_answers_its_items_and_ends_unavailable() -> None:
    # The items in flight are answered, nothing more is read, and the stream ends at once: it
    # read on for the drain's whole grace before, and was then cut with its items in flight
    # unanswered.
    intake, streams, ended = SlowIntake(0.05), Streams(), asyncio.Event()
    answered: list[ItemResult] = []
    stream = open_stream(intake, kept_open(items(5), ended), streams)

    async def read() -> None:
        async for result in stream:
            answered.append(result)

    reading = asyncio.create_task(read())
    await until(lambda: intake.in_flight == 5)
    streams.stop()
    with pytest.raises(Unavailable, match="intake is stopping"):
        await asyncio.wait_for(reading, 5)
    assert [(r.index, r.accepted) for r in answered] == [
        (n, Accepted(f"T{n}", NOW)) for n in range(5)
    ]
    assert ended.is_set()  # its items are read no further


async def test_a_stream_opened_once_the_drain_began_takes_no_item() -> None:
    intake, streams, ended = CountingIntake(), Streams(), asyncio.Event()
    streams.stop()
    stream = open_stream(intake, kept_open(items(3), ended), streams)
    with pytest.raises(Unavailable, match="intake is stopping"):
        await anext(stream)  # no item is answered: none is taken
    assert intake.submitted == []


async def test_a_stream_whose_items_were_all_read_ends_as_ever_when_the_drain_begins() -> None:
    intake, streams = SlowIntake(0.05), Streams()
    stream = open_stream(intake, items_of(items(5)), streams)
    first = await anext(stream)
    streams.stop()  # the caller half-closed: every item was read before the drain
    rest = [result async for result in stream]
    assert [r.index for r in [first, *rest]] == list(range(5))
    assert all(r.accepted is not None for r in rest)
