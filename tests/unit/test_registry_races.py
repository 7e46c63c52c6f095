"""A change sent without expected_revision is tried again on the entity as it stands when
another change came first, a bounded number of times and never past the caller's deadline; one
that named a revision is not."""

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest

from sanad import deadline as deadlines
from sanad.deadline import NO_DEADLINE, Deadline
from sanad.errors import Aborted
from services.registry import races
from services.registry.domain import CatalogService
from services.registry.races import CHANGE_TRIES, as_it_stands

SAVED = CatalogService("S", "ROP", "ع", "s", 0, 1)


def losing(
    times: int, taking_s: float = 0.0
) -> tuple[list[int], Callable[[], Awaitable[CatalogService]]]:
    """An attempt that takes taking_s and loses `times` races, then saves; and its tries."""
    tries: list[int] = []

    async def attempt() -> CatalogService:
        tries.append(len(tries) + 1)
        await asyncio.sleep(taking_s)
        if len(tries) <= times:
            raise Aborted("changed meanwhile")
        return SAVED

    return tries, attempt


def test_a_change_that_lost_races_is_tried_again_until_it_saves() -> None:
    tries, attempt = losing(CHANGE_TRIES - 1)
    assert asyncio.run(as_it_stands(attempt, "s", retry=True, deadline=NO_DEADLINE)) is SAVED
    assert len(tries) == CHANGE_TRIES


def test_a_change_that_keeps_losing_is_aborted_after_the_last_try() -> None:
    tries, attempt = losing(CHANGE_TRIES)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=True, deadline=NO_DEADLINE))
    assert len(tries) == CHANGE_TRIES


def test_a_change_that_named_a_revision_is_aborted_at_once() -> None:
    tries, attempt = losing(1)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=False, deadline=NO_DEADLINE))
    assert tries == [1]


def test_a_change_with_no_time_left_of_the_callers_deadline_is_not_tried_again() -> None:
    tries, attempt = losing(1)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=True, deadline=Deadline(0.0)))
    assert tries == [1]


def test_a_change_that_keeps_losing_is_aborted_before_the_callers_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tries of 50 ms in a 250 ms deadline, on a clock of the test's own (a loaded machine's
    # sleeps overran the wall clock's, and the test failed 22 times in 40): at most five fit,
    # and none is begun that would end past the deadline.
    clock = FakeClock()
    monkeypatch.setattr(races, "time", SimpleNamespace(monotonic=clock.now))
    monkeypatch.setattr(races, "asyncio", SimpleNamespace(sleep=clock.sleep))
    # The shortest pauses: the most tries that could be begun.
    monkeypatch.setattr(deadlines, "random", SimpleNamespace(uniform=lambda low, high: low))
    tries: list[tuple[float, float]] = []

    async def attempt() -> CatalogService:
        started = clock.now()
        await clock.sleep(0.05)
        tries.append((started, clock.now()))
        raise Aborted("changed meanwhile")

    deadline = Deadline(0.25, clock=clock.now)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=True, deadline=deadline))
    assert 1 < len(tries) < CHANGE_TRIES
    assert deadline.end is not None
    assert all(ended <= deadline.end for _, ended in tries), (tries, deadline.end)


class FakeClock:
    """Time that passes only when a try or a pause says so."""

    def __init__(self) -> None:
        self.at = 100.0

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += seconds
