"""The revision a registry watch may start from: 0 replays everything, below 0 is refused; an
open stream whose registry is restored behind it ends OUT_OF_RANGE."""

import asyncio

import pytest

from sanad.errors import Invalid, OutOfRange
from services.registry.domain import CatalogService
from services.registry.operations import ChangeFeed


async def no_changes(revision: int) -> list[CatalogService]:
    return []


async def head() -> int:
    return 3


async def test_a_negative_since_revision_is_invalid_naming_the_field() -> None:
    stream = ChangeFeed(poll_s=0.01).watch(no_changes, head, -1)
    with pytest.raises(Invalid) as refused:
        await anext(stream)
    assert [v.field for v in refused.value.violations] == ["since_revision"]
    assert refused.value.violations[0].description == (
        "-1 is negative; watch from 0 to replay everything"
    )


async def test_zero_replays_everything_then_marks_the_end_of_the_replay() -> None:
    asked: list[int] = []

    async def fetch(revision: int) -> list[CatalogService]:
        asked.append(revision)
        return []

    stream = ChangeFeed(poll_s=0.01).watch(fetch, head, 0)
    assert await anext(stream) == 0
    assert asked == [0]
    await stream.aclose()


async def test_an_open_stream_ends_out_of_range_once_the_registry_is_restored_behind_it() -> None:
    revisions = {"latest": 3}

    async def fetch(revision: int) -> list[CatalogService]:
        return []

    async def latest() -> int:
        return revisions["latest"]

    stream = ChangeFeed(poll_s=0.01, head_check_s=0.0).watch(fetch, latest, 3)
    assert await anext(stream) == 3  # synced at the latest revision
    revisions["latest"] = 1  # a backup from before revisions 2 and 3 is restored
    with pytest.raises(OutOfRange) as refused:
        await anext(stream)
    assert refused.value.violations[0].description == (
        "the registry's latest revision is now 1, before this stream's 3 (its database was"
        " restored); watch from 0 to resynchronise"
    )


async def test_an_open_stream_at_the_latest_revision_goes_on_waiting() -> None:
    stream = ChangeFeed(poll_s=0.01, head_check_s=0.0).watch(no_changes, head, 3)
    assert await anext(stream) == 3
    with pytest.raises(TimeoutError):  # nothing to send, nothing wrong: it waits
        await asyncio.wait_for(anext(stream), 0.2)
