"""A claim whose shared insert outlasts its caller's deadline: the caller gets UNAVAILABLE, the
insert goes on and records the claim, and the retry that replays it counts the transaction once
when the broker confirms it (before, it was never counted in sanad_transactions_submitted_total).
A claim that lost to an earlier one is not counted again."""

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import BulkWriteError

from sanad.coalesce import InsertCoalescer
from sanad.deadline import Deadline
from sanad.errors import Unavailable
from sanad.security.identity import DEV_ADMIN
from tests.unit.test_intake_submit import CENTER, SERVICE, Setup, setup, submission

LABELS = {
    "governorate": CENTER.governorate_code,
    "wilayat": CENTER.wilayat_code,
    "agency": SERVICE.agency_code,
}
CALLER = "centre:abraj@C1"


def counted() -> float:
    return REGISTRY.get_sample_value("sanad_transactions_submitted_total", LABELS) or 0.0


def answering_late(s: Setup, delay_s: float) -> Any:
    """Make MongoDB answer the claims' inserts only after delay_s; returns the real insert."""
    real_insert = s.requests.insert_many

    async def slow_insert(docs: list[dict[str, Any]], ordered: bool) -> Any:
        await asyncio.sleep(delay_s)
        return await real_insert(docs, ordered)

    s.requests.insert_many = slow_insert  # type: ignore[method-assign]
    return real_insert


async def test_a_claim_recorded_after_its_caller_gave_up_is_counted_at_the_retry() -> None:
    s = setup()
    before = counted()
    real_insert = answering_late(s, 0.3)
    with pytest.raises(Unavailable):
        await s.intake.submit(submission(), CALLER, DEV_ADMIN, Deadline(0.1))
    await asyncio.sleep(0.4)  # the shared insert records the claim
    s.requests.insert_many = real_insert  # type: ignore[method-assign]

    accepted = await s.intake.submit(submission(), CALLER, DEV_ADMIN, Deadline(5.0))

    assert accepted.transaction_id == next(iter(s.requests.docs.values()))["transaction_id"]
    assert len(s.publisher.sent) == 1
    assert counted() - before == 1


async def test_a_late_claim_that_lost_to_an_earlier_one_is_not_counted_again() -> None:
    s = setup()
    await s.intake.submit(submission(), CALLER, DEV_ADMIN, Deadline(5.0))
    before = counted()
    real_insert = answering_late(s, 0.3)
    with pytest.raises(Unavailable):
        await s.intake.submit(submission(), CALLER, DEV_ADMIN, Deadline(0.1))
    await asyncio.sleep(0.4)
    s.requests.insert_many = real_insert  # type: ignore[method-assign]

    await s.intake.submit(submission(), CALLER, DEV_ADMIN, Deadline(5.0))

    assert counted() == before


class Slow:
    """insert_many that answers after a pause, with a duplicate for ids already taken."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        await asyncio.sleep(0.1)
        errors = [
            {"index": n, "code": 11000, "errmsg": "duplicate key"}
            for n, doc in enumerate(documents)
            if doc["_id"] in self.taken
        ]
        if errors:
            raise BulkWriteError({"writeErrors": errors})


async def test_the_coalescer_tells_a_caller_that_gave_up_only_of_its_own_insert() -> None:
    coalescer = InsertCoalescer(Slow(taken={"old"}))  # type: ignore[arg-type]
    told: list[str] = []
    callers = [
        asyncio.create_task(coalescer.insert({"_id": key}, lambda key=key: told.append(key)))
        for key in ("new", "old")
    ]
    await asyncio.sleep(0.01)
    for caller in callers:
        caller.cancel()  # both deadlines pass while the round trip is in flight
    await coalescer.drain()

    assert told == ["new"]
