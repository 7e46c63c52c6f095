"""Intake's storage: idempotency records it writes, and transactions the workers write.

Every call runs under pymongo.timeout() with what is left of the caller's
deadline, and an unreachable or slow MongoDB becomes Unavailable.
"""

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from sanad import records
from sanad.coalesce import InsertCoalescer
from sanad.domain.clock import to_millisecond
from sanad.errors import Unavailable
from sanad.mongo import passing, within
from services.intake.listing import ListQuery

Document = dict[str, Any]


def _just_before(moment: datetime) -> datetime | None:
    """The bound of ">= moment" as "> moment - 1 ms", or None at the earliest datetime.

    The same at BSON's millisecond resolution, and SecantusDB 0.7 drops the boundary of an
    inclusive range on the listing index's middle field. At year 1 (a valid Timestamp) the
    subtraction overflows; there nothing is earlier, so no bound is needed.
    """
    try:
        return to_millisecond(moment) - timedelta(milliseconds=1)
    except OverflowError:
        return None


class IntakeStore:
    """`intake_requests` (one per caller and request id, and per rating) and `transactions`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.requests = db["intake_requests"]
        self.claims = InsertCoalescer(self.requests)
        self.transactions = db[records.COLLECTION]

    async def ensure_indexes(self) -> None:
        """The listing index (the ingest worker creates it as well, before it stores any)."""
        await self.transactions.create_index(records.LISTING_INDEX)

    async def claim_request(
        self,
        key: str,
        transaction_id: str,
        fingerprint: str,
        submit_time: datetime,
        timeout_s: float | None = None,
    ) -> Document:
        """Record key -> transaction id unless already recorded; return the winning record.

        Concurrent claims of one key race on the unique _id: exactly one insert
        wins and every caller gets that record back.
        """
        record = {
            "_id": key,
            "transaction_id": transaction_id,
            "fingerprint": fingerprint,
            "submit_time": submit_time,
        }
        return await self._claim(record, timeout_s)

    async def find_request(self, key: str, timeout_s: float | None = None) -> Document | None:
        """The record of key, if claimed: a read only, for replays the registry now refuses."""
        async with within(timeout_s):
            return await self.requests.find_one({"_id": key})

    async def claim_rating(
        self, transaction_id: str, rating: int, given: datetime, timeout_s: float | None = None
    ) -> tuple[int, datetime]:
        """Record a transaction's one rating unless recorded; return the winner and its time."""
        record = {"_id": f"rating\x1f{transaction_id}", "rating": rating, "time": given}
        winner = await self._claim(record, timeout_s)
        return int(winner["rating"]), winner["time"]

    async def _claim(self, record: Document, timeout_s: float | None) -> Document:
        """The coalesced insert under asyncio.timeout (pymongo.timeout cannot reach the shared
        batch, which runs in a context of its own); the winner's read under sanad.mongo.within."""
        if timeout_s is not None and timeout_s <= 0:
            raise Unavailable("no time left of the caller's deadline to reach the database")
        ends = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await self.claims.insert(record)
        except TimeoutError as error:
            raise Unavailable("the database did not answer in time; retry later") from error
        except DuplicateKeyError:
            left = None if ends is None else ends - time.monotonic()
            async with within(left):
                existing = await self.requests.find_one({"_id": record["_id"]})
            if existing is None:  # removed between the two calls; claim again
                return await self._claim(record, left)
            return existing
        except PyMongoError as error:
            if passing(error):
                raise Unavailable("the database did not answer in time; retry later") from error
            raise
        return record

    async def get_transaction(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None:
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
        if query.submitted_before is not None:
            window["$lt"] = query.submitted_before
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
