"""A change sent without expected_revision is tried again on the entity as it stands when
another change came first, a bounded number of times and never past the caller's deadline; one
that named a revision is not."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from sanad.deadline import NO_DEADLINE, Deadline
from sanad.errors import Aborted
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


def test_a_change_that_keeps_losing_is_aborted_before_the_callers_deadline() -> None:
    # Tries of 50 ms in a 250 ms deadline: at most five fit, however short the random pauses,
    # and none is begun that would end past the deadline.
    tries, attempt = losing(CHANGE_TRIES, taking_s=0.05)

    async def change() -> float:
        started = time.monotonic()
        with pytest.raises(Aborted):
            await as_it_stands(attempt, "s", retry=True, deadline=Deadline(0.25))
        return time.monotonic() - started

    took_s = asyncio.run(change())
    assert 1 < len(tries) < CHANGE_TRIES
    assert took_s < 0.25
