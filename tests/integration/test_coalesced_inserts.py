"""Concurrent single inserts share insert_many round trips and keep their own outcomes."""

import asyncio

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError

from sanad.coalesce import InsertCoalescer

pytestmark = pytest.mark.integration


class InsertCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.inserts = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.inserts += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_each_caller_gets_its_own_outcome_from_shared_round_trips(
    mongo_url: str, database_name: str
) -> None:
    counter = InsertCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, event_listeners=[counter])
    collection = client[database_name]["claims"]
    await collection.insert_one({"_id": "taken"})
    counter.inserts = 0
    coalescer = InsertCoalescer(collection)
    keys = [f"k{n}" for n in range(300)] + ["taken", "k7"]
    results = await asyncio.gather(
        *(coalescer.insert({"_id": key}) for key in keys), return_exceptions=True
    )
    duplicates = [key for key, result in zip(keys, results, strict=True)
                  if isinstance(result, DuplicateKeyError)]  # fmt: skip
    assert duplicates == ["taken", "k7"]
    assert all(r is None for r in results[:300])
    assert await collection.count_documents({}) == 301
    assert counter.inserts < 20  # 302 inserts shared a handful of round trips
    await client.close()
