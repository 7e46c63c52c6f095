"""Intake's reads of `transactions`, which the workers write: intake never writes one (its own
records: request_store.py), and builds no index on them: the ingest worker builds the listing
index before it stores any, so intake's MongoDB user needs no createIndex there (with it, a
stolen credential could build a TTL index that deletes transactions).

Every read runs under pymongo.timeout() with what is left of the caller's deadline, and an
unreachable or slow MongoDB becomes Unavailable.
"""

from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sanad import records
from sanad.domain.clock import to_millisecond
from sanad.mongo import within
from services.intake.listing import ListQuery

Document = dict[str, Any]


def _just_before(moment: datetime) -> datetime | None:
    """The bound of ">= moment" as "> t" at BSON's millisecond resolution, or None when nothing
    stored can be earlier.

    A stored time is a whole millisecond, so ">= moment" means ">= moment rounded up", which
    is "> moment rounded down" when moment falls inside a millisecond and "> moment - 1 ms"
    when it is whole (BSON would truncate a sub-millisecond bound, letting a time stored at
    T match a bound of T + 0.5 ms). SecantusDB 0.7 drops the boundary of an inclusive range
    on the listing index's middle field, hence the exclusive form. At year 1 (a valid
    Timestamp) the subtraction overflows; there nothing is earlier, so no bound is needed.
    """
    floor = to_millisecond(moment)
    if floor != moment:
        return floor
    try:
        return floor - timedelta(milliseconds=1)
    except OverflowError:
        return None


def _strictly_before(moment: datetime) -> datetime | None:
    """The bound of "< moment" at BSON's millisecond resolution: "< moment rounded up" (BSON
    would truncate it, dropping a time stored at T from a window ending at T + 0.5 ms), or
    None when moment lies in the last millisecond a datetime holds and everything is before.
    """
    floor = to_millisecond(moment)
    if floor == moment:
        return floor
    try:
        return floor + timedelta(milliseconds=1)
    except OverflowError:
        return None


class TransactionStore:
    """`transactions`, as intake reads them: one by id, or a page of a centre's listing."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.transactions = db[records.COLLECTION]

    async def get_transaction(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None:
        """The stored transaction of that id, if a worker has stored it."""
        async with within(timeout_s):
            return await self.transactions.find_one({"_id": transaction_id})

    async def list_transactions(
        self, query: ListQuery, timeout_s: float | None = None
    ) -> list[Document]:
        """One page (plus one, to tell whether more follow), newest first."""
        found: Document = {"center_id": query.center_id}
        if query.status is not None:
            found["status"] = query.status.value
        if query.agency_code:
            found["agency_code"] = query.agency_code
        window: Document = {}
        after = None if query.submitted_after is None else _just_before(query.submitted_after)
        if after is not None:
            window["$gt"] = after
        before = (
            None if query.submitted_before is None else _strictly_before(query.submitted_before)
        )
        if before is not None:
            window["$lt"] = before
        if window:
            found["submit_time"] = window
        if query.after is not None:
            time, last_id = query.after
            found = {
                "$and": [
                    found,
                    {
                        "$or": [
                            {"submit_time": {"$lt": time}},
                            {"submit_time": time, "_id": {"$lt": last_id}},
                        ]
                    },
                ]
            }
        cursor = self.transactions.find(found).sort(
            [("submit_time", DESCENDING), ("_id", DESCENDING)]
        )
        async with within(timeout_s):
            return await cursor.limit(query.page_size + 1).to_list()
