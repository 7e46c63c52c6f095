"""SubmitTransactions' pipeline: answers in order, bounded in flight, limited in length."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial

import pytest

from sanad.errors import Invalid, RateLimited, Unavailable, Violation
from sanad.security.identity import DEV_ADMIN, Identity
from sanad.security.limits import RateLimiter
from services.intake.deadline import Deadline
from services.intake.domain import Channel, Submission
from services.intake.operations import Accepted
from services.intake.streaming import ItemResult, StreamLimits, submit_stream

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
        deadline=lambda: Deadline(5.0),
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


async def test_a_stream_longer_than_the_limit_is_answered_then_refused() -> None:
    answered: list[ItemResult] = []
    stream = submit_stream(
        SlowIntake(0.001),  # type: ignore[arg-type]
        items_of([item(n) for n in range(30)]),
        caller="tester",
        identity=DEV_ADMIN,
        deadline=lambda: Deadline(None),
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
        deadline=lambda: Deadline(None),
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
