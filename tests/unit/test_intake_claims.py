"""Idempotency claims: the winner's record comes back; a sick database is UNAVAILABLE in time."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError

from sanad.errors import Unavailable
from services.intake.request_store import RequestStore

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class FakeRequests:
    """insert_many with unique _id, find_one by _id; optionally slow or broken."""

    def __init__(self, delay_s: float = 0.0, broken: bool = False) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.delay_s, self.broken = delay_s, broken

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        await asyncio.sleep(self.delay_s)
        if self.broken:
            raise AutoReconnect("connection refused")
        errors = []
        for index, doc in enumerate(documents):
            if doc["_id"] in self.docs:
                errors.append({"index": index, "code": 11000, "errmsg": "duplicate key"})
            else:
                self.docs[doc["_id"]] = dict(doc)
        if errors:
            raise BulkWriteError({"writeErrors": errors})

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        return self.docs.get(query["_id"])


def store_with(requests: FakeRequests) -> RequestStore:
    return RequestStore({"intake_requests": requests, "intake_unsent": None, "audit_log": None})  # type: ignore[arg-type]


async def test_concurrent_claims_of_one_key_all_get_the_first_transaction_id() -> None:
    store = store_with(FakeRequests(delay_s=0.01))
    records = await asyncio.gather(
        *(store.claim_request("key", f"T{n}", "fp", NOW, 2.0) for n in range(5))
    )
    assert {record["transaction_id"] for record in records} == {"T0"}


async def test_a_lost_database_connection_is_unavailable() -> None:
    store = store_with(FakeRequests(broken=True))
    with pytest.raises(Unavailable):
        await store.claim_request("key", "T1", "fp", NOW, 2.0)


async def test_a_database_slower_than_the_deadline_is_unavailable_when_the_deadline_passes() -> (
    None
):
    # A database that answers only after an hour; the 0.2 s deadline must end the wait. The
    # bound is the behaviour: 10 s, 50 times the deadline, turns a wait for the database into a
    # TimeoutError instead of Unavailable; and the refusal does not come before the deadline.
    store = store_with(FakeRequests(delay_s=3600.0))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(store.claim_request("key", "T1", "fp", NOW, 0.2), 10)
    assert time.monotonic() - started >= 0.19  # asyncio's timer may fire a hair early


async def test_no_time_left_is_unavailable_without_touching_the_database() -> None:
    requests = FakeRequests()
    with pytest.raises(Unavailable, match="deadline"):
        await store_with(requests).claim_request("key", "T1", "fp", NOW, 0.0)
    assert requests.docs == {}
