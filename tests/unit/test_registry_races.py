"""A change sent without expected_revision is tried again on the entity as it stands when
another change came first, a bounded number of times; one that named a revision is not."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sanad.errors import Aborted
from services.registry.domain import CatalogService
from services.registry.races import CHANGE_TRIES, as_it_stands

SAVED = CatalogService("S", "ROP", "ع", "s", 0, 1)


def losing(times: int) -> tuple[list[int], Callable[[], Awaitable[CatalogService]]]:
    """An attempt that loses `times` races, then saves; and the list of its tries."""
    tries: list[int] = []

    async def attempt() -> CatalogService:
        tries.append(len(tries) + 1)
        if len(tries) <= times:
            raise Aborted("changed meanwhile")
        return SAVED

    return tries, attempt


def test_a_change_that_lost_races_is_tried_again_until_it_saves() -> None:
    tries, attempt = losing(CHANGE_TRIES - 1)
    assert asyncio.run(as_it_stands(attempt, "s", retry=True)) is SAVED
    assert len(tries) == CHANGE_TRIES


def test_a_change_that_keeps_losing_is_aborted_after_the_last_try() -> None:
    tries, attempt = losing(CHANGE_TRIES)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=True))
    assert len(tries) == CHANGE_TRIES


def test_a_change_that_named_a_revision_is_aborted_at_once() -> None:
    tries, attempt = losing(1)
    with pytest.raises(Aborted):
        asyncio.run(as_it_stands(attempt, "s", retry=False))
    assert tries == [1]
