"""Draining the insert coalescer: documents of callers that gave up are still written first."""

import asyncio
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteConcernError

from sanad.coalesce import InsertCoalescer
from sanad.mongo import passing


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


class ConcernFailing:
    """insert_many that stored the documents but could not make them as durable as asked."""

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        raise BulkWriteError(
            {
                "writeErrors": [{"index": 1, "code": 11000, "errmsg": "duplicate key"}],
                "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
                "nInserted": 2,
            }
        )


async def test_a_write_concern_error_fails_every_caller_as_insert_one_would() -> None:
    coalescer = InsertCoalescer(ConcernFailing())  # type: ignore[arg-type]

    outcomes = await asyncio.gather(
        *(coalescer.insert({"_id": n}) for n in range(3)), return_exceptions=True
    )

    assert [type(o) for o in outcomes] == [WriteConcernError, DuplicateKeyError, WriteConcernError]
    assert passing(outcomes[0])  # type: ignore[arg-type]  # intake answers UNAVAILABLE: retry
