"""Draining the insert coalescer: documents of callers that gave up are still written first."""

import asyncio
from typing import Any

from sanad.coalesce import InsertCoalescer


class SlowCollection:
    """insert_many waits until released, then keeps what it was given."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.written: list[dict[str, Any]] = []

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        await self.release.wait()
        self.written.extend(documents)


async def test_drain_waits_for_a_write_whose_caller_was_cancelled() -> None:
    collection = SlowCollection()
    coalescer = InsertCoalescer(collection)  # type: ignore[arg-type]
    caller = asyncio.create_task(coalescer.insert({"_id": "audit-1"}))
    await asyncio.sleep(0)
    caller.cancel()  # the RPC ended (its deadline passed) while the write was in flight
    drained = asyncio.create_task(coalescer.drain())
    await asyncio.sleep(0.05)
    assert not drained.done()
    collection.release.set()
    await asyncio.wait_for(drained, timeout=5)
    assert collection.written == [{"_id": "audit-1"}]


async def test_drain_returns_at_once_when_nothing_is_queued() -> None:
    await asyncio.wait_for(InsertCoalescer(SlowCollection()).drain(), timeout=5)  # type: ignore[arg-type]
