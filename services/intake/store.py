"""Intake's storage: idempotency records it writes, and transactions the workers write.

Every call runs under pymongo.timeout() with what is left of the caller's
deadline, and an unreachable or slow MongoDB becomes Unavailable.
"""

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from sanad import records
from sanad.coalesce import InsertCoalescer
from sanad.domain.clock import to_millisecond
from sanad.errors import Unavailable
from sanad.mongo import passing, within
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


def _change_key(transaction_id: str) -> str:
    return f"status\x1f{transaction_id}"


class IntakeStore:
    """`intake_requests` (one per caller and request id of a submission or of a status change,
    per rating, and per transaction the latest accepted status change) and `transactions`."""

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
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
    ) -> tuple[int, datetime, str]:
        """Record a transaction's one rating unless recorded; return the winner, its time and
        who gave it (claims from before the actor was kept give '')."""
        record = {
            "_id": f"rating\x1f{transaction_id}",
            "rating": rating,
            "time": given,
            "actor": actor,
        }
        winner = await self._claim(record, timeout_s)
        return int(winner["rating"]), winner["time"], str(winner.get("actor", ""))

    async def latest_change(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None:
        """The record of the transaction's latest accepted status change, if any was: status,
        sequence, time, the event and its message id, and whether its publish was confirmed."""
        async with within(timeout_s):
            return await self.requests.find_one({"_id": _change_key(transaction_id)})

    async def accept_change(
        self,
        transaction_id: str,
        previous: int,
        record: Document,
        timeout_s: float | None = None,
        answer: Document | None = None,
    ) -> bool:
        """Compare-and-set: make record the latest change if `previous` still is; False when
        another change was accepted first (the caller judges again).

        With `answer` (the record of the change's request id), both are written in one MongoDB
        transaction: the answer is remembered exactly when the change is accepted. False too
        when the request id was recorded first, by a concurrent call of the same request.
        """
        async with within(timeout_s):
            if answer is None:
                return await self._set_latest(transaction_id, previous, record, None)
            return await self._accept_with_answer(transaction_id, previous, record, answer)

    async def _accept_with_answer(
        self, transaction_id: str, previous: int, record: Document, answer: Document
    ) -> bool:
        """The compare-and-set and the answer's insert in one transaction: both or neither."""
        try:
            async with (
                self.requests.database.client.start_session() as session,
                await session.start_transaction(),
            ):
                if not await self._set_latest(transaction_id, previous, record, session):
                    await session.abort_transaction()
                    return False
                await self.requests.insert_one(answer, session=session)
        except DuplicateKeyError:
            return False  # the latest change's first record, or the answer, was written first
        except OperationFailure as error:
            if error.has_error_label("TransientTransactionError"):
                return False  # a write conflict: a concurrent change was accepted first
            if error.has_error_label("UnknownTransactionCommitResult"):
                raise Unavailable("the database did not answer in time; retry") from error
            raise
        return True

    async def _set_latest(
        self,
        transaction_id: str,
        previous: int,
        record: Document,
        session: AsyncClientSession | None,
    ) -> bool:
        """The compare-and-set itself: the first change inserts the record, a later one moves it
        on from `previous`."""
        key = _change_key(transaction_id)
        if previous == 0:
            try:
                await self.requests.insert_one({"_id": key, **record}, session=session)
            except DuplicateKeyError:
                return False
            return True
        result = await self.requests.update_one(
            {"_id": key, "sequence": previous}, {"$set": record}, session=session
        )
        return result.matched_count == 1

    async def find_change_request(
        self, key: str, timeout_s: float | None = None
    ) -> Document | None:
        """The remembered answer of a status change's request id, if it was accepted."""
        async with within(timeout_s):
            return await self.requests.find_one({"_id": key})

    async def confirm_change(
        self, transaction_id: str, sequence: int, timeout_s: float | None = None
    ) -> None:
        """Note that the change of that sequence was confirmed by the broker."""
        async with within(timeout_s):
            await self.requests.update_one(
                {"_id": _change_key(transaction_id), "sequence": sequence},
                {"$set": {"confirmed": True}},
            )

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
