"""The revision a registry watch may start from: 0 replays everything, below 0 is refused."""

import pytest

from sanad.errors import Invalid
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
