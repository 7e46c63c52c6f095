"""The registry's change feed wakes its watch streams after every write, and a watch stream
cancelled at any moment (its caller went away) leaves nothing held that a write or another
stream then waits for. As the registry drains, the feed ends every stream."""

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime

import pytest

from services.registry.operations import ChangeFeed


@dataclass(frozen=True)
class Change:
    revision: int
    update_time: datetime | None = None


async def head() -> int:
    return 0


async def nothing_new(revision: int) -> list[Change]:
    return []


async def watching(feed: ChangeFeed) -> None:
    async for _ in feed.watch(nothing_new, head, 0):
        pass


async def test_watch_streams_cancelled_as_their_polls_time_out_all_end_and_hold_nothing() -> None:
    # Seen in a running registry: streams cancelled while the feed's poll timed out left its
    # lock held; every write then hung after its commit, and intake saw no more changes.
    feed = ChangeFeed(poll_s=0.005)
    chance = random.Random(7)
    for _ in range(60):
        streams = [asyncio.create_task(watching(feed)) for _ in range(50)]
        await asyncio.sleep(chance.uniform(0.004, 0.02))
        for stream in streams:
            stream.cancel()
        done, still_running = await asyncio.wait(streams, timeout=5)
        assert not still_running
        assert all(stream.cancelled() for stream in done)

    # A write is told to the watchers at once, and a new stream wakes for it long before its
    # poll would have found it.
    feed.poll_s = 60
    stored = [Change(1)]

    async def since(revision: int) -> list[Change]:
        return [change for change in stored if change.revision > revision]

    async def latest() -> int:
        return 0

    stored.clear()
    stream = feed.watch(since, latest, 0)
    assert await anext(stream) == 0  # synced
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)  # the stream now waits for a change
    stored.append(Change(1))
    assert feed.published(Change(1)) == Change(1)
    assert await asyncio.wait_for(waiting, 10) == Change(1)
    await stream.aclose()


async def test_a_write_committed_while_a_stream_reads_wakes_it_at_once() -> None:
    feed = ChangeFeed(poll_s=60)
    stored: list[Change] = []

    async def since(revision: int) -> list[Change]:
        found = [change for change in stored if change.revision > revision]
        if not stored:  # a write commits while this read runs, after what the read saw
            stored.append(feed.published(Change(1)))
        return found

    stream = feed.watch(since, head, 0)
    assert await anext(stream) == 0  # synced, before the write
    assert await asyncio.wait_for(anext(stream), 10) == Change(1)  # not after the 60 s poll
    await stream.aclose()


async def test_closing_the_feed_ends_a_waiting_stream_at_once() -> None:
    # As the registry drains: watch streams never end by themselves and held its whole grace.
    feed = ChangeFeed(poll_s=60)
    stream = feed.watch(nothing_new, head, 0)
    assert await anext(stream) == 0
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)  # the stream now waits for a change
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 10)  # not after the 60 s poll


async def test_a_watch_whose_call_is_over_ends_at_its_next_pass_without_a_change() -> None:
    # A cancel the watch missed (Python 3.11's wait_for can drop one inside PyMongo) left it
    # polling MongoDB and holding its caller's stream slot until the next change: each pass
    # asks whether the call is over.
    feed = ChangeFeed(poll_s=0.005)
    over = False
    stream = feed.watch(nothing_new, head, 0, lambda: over)
    assert await anext(stream) == 0  # synced
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # polling, nothing to say
    over = True
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
