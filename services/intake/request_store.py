"""Intake's own records in `intake_requests`: what it has accepted, so a retry is answered alike.

One record per caller and request id of a submission (claimed through a coalesced insert), per
transaction its one rating, per transaction its latest accepted status change (moved on by
compare-and-set, with a note once the broker confirmed it), and per caller and request id of a
status change its first answer. An accepted status change's OK audit event is inserted in
`audit_log` in the same MongoDB transaction as the change, and a winning rating claim's in the
claim's own. The transactions themselves are the workers' (store.py).

Every call runs under pymongo.timeout(), or a timer of its own for a claim, with what is left of
the caller's deadline, and an unreachable or slow MongoDB becomes Unavailable; so does, for a
submission's claim and its read, a failure that passes (services.intake.failures.transient).
"""

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from sanad import records
from sanad.coalesce import InsertCoalescer
from sanad.domain.clock import utcnow
from sanad.errors import Unavailable
from sanad.lost_sessions import transaction_session
from sanad.mongo import within
from sanad.security import audit
from sanad.security.carried import CarriedEvent
from services.intake.failures import transient

Document = dict[str, Any]


def _rating_key(transaction_id: str) -> str:
    """The _id of a transaction's rating claim."""
    return f"rating\x1f{transaction_id}"


def _change_key(transaction_id: str) -> str:
    return f"status\x1f{transaction_id}"


def unsent_key(kind: str, transaction_id: str) -> str:
    """The _id of a note in intake_unsent: 'status' or 'rating', and the transaction; also
    the key of the transaction's resends (resends.py)."""
    return f"{kind} {transaction_id}"


class RequestStore:
    """`intake_requests`: one record per caller and request id of a submission or of a status
    change, per rating, and per transaction the latest accepted status change."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.requests = db[records.REQUESTS_COLLECTION]
        self.unsent = db[records.UNSENT_COLLECTION]
        self.audit_log = db[audit.COLLECTION]
        self.claims = InsertCoalescer(self.requests)

    async def claim_request(
        self,
        key: str,
        transaction_id: str,
        fingerprint: str,
        submit_time: datetime,
        timeout_s: float | None = None,
        *,
        registry: Mapping[str, Any] | None = None,
        claimed_late: Callable[[], None] | None = None,
    ) -> Document:
        """Record key -> transaction id unless already recorded; return the winning record.

        Concurrent claims of one key race on the unique _id: exactly one insert
        wins and every caller gets that record back. `registry` is what the submission's
        message takes from the registry (its centre's and service's fields), kept for replays;
        records written before it was kept have none. `claimed_late` is called when this call
        gave up (Unavailable: its time ran out) and its record was inserted after all.
        """
        record: Document = {
            "_id": key,
            "transaction_id": transaction_id,
            "fingerprint": fingerprint,
            "submit_time": submit_time,
        }
        if registry is not None:
            record["registry"] = dict(registry)
        return await self._claim(record, timeout_s, claimed_late)

    async def find_request(self, key: str, timeout_s: float | None = None) -> Document | None:
        """The record of key, if claimed: a read only, for replays the registry now refuses."""
        try:
            async with within(timeout_s):
                return await self.requests.find_one({"_id": key})
        except PyMongoError as error:
            if transient(error):  # beyond what `within` knows passes: a primary stepping down
                raise Unavailable("the database did not answer in time; retry later") from error
            raise

    async def claim_rating(
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
        *,
        event: CarriedEvent | None = None,
    ) -> tuple[int, datetime, str]:
        """Record a transaction's one rating unless recorded; return the winner, its time and
        who gave it (claims from before the actor was kept give '').

        With an `event` to carry (the call's OK audit event), the claim and the event are
        inserted in one MongoDB transaction: the event is stored exactly when this call's
        claim wins, and given back to the interceptor when another claim was there first.
        """
        record = {
            "_id": _rating_key(transaction_id),
            "rating": rating,
            "time": given,
            "actor": actor,
        }
        if event is None or event.document is None:
            winner = await self._claim(record, timeout_s)
        else:
            winner = await self._claim_with_event(record, event, timeout_s)
        return int(winner["rating"]), winner["time"], str(winner.get("actor", ""))

    async def find_rating(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> tuple[int, datetime, str] | None:
        """The transaction's claimed rating, its time and who gave it; None when unclaimed."""
        found = await self.find_request(_rating_key(transaction_id), timeout_s)
        if found is None:
            return None
        return int(found["rating"]), found["time"], str(found.get("actor", ""))

    async def _claim_with_event(
        self, record: Document, event: CarriedEvent, timeout_s: float | None
    ) -> Document:
        """The claim's insert and the event's in one transaction; the stored winner when the
        claim was recorded first (claims are never removed)."""

        async def insert(session: AsyncClientSession) -> None:
            await self.requests.insert_one(record, session=session)

        async with within(timeout_s):
            try:
                async with transaction_session(self.requests.database.client) as session:
                    await event.run(session, insert)
            except DuplicateKeyError:
                existing = await self.requests.find_one({"_id": record["_id"]})
                if existing is None:
                    raise Unavailable("the rating's claim could not be read; retry") from None
                return existing
        return record

    async def latest_change(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None:
        """The record of the transaction's latest accepted status change, if any was: status,
        sequence, time, the event and its message id, and whether its publish was confirmed."""
        async with within(timeout_s):
            return await self.requests.find_one({"_id": _change_key(transaction_id)})

    def carried_event(self) -> CarriedEvent:
        """The running call's OK audit event (none when it offers none), taken once for the
        transaction that accepts its status change (sanad.security.carried)."""
        return CarriedEvent(self.audit_log, {})

    async def accept_change(
        self,
        transaction_id: str,
        previous: int,
        record: Document,
        timeout_s: float | None = None,
        *,
        answer: Document | None = None,
        event: CarriedEvent | None = None,
    ) -> bool:
        """Compare-and-set: make record the latest change if `previous` still is; False when
        another change was accepted first (the caller judges again).

        With `answer` (the record of the change's request id) or an `event` to carry (the call's
        OK audit event), all are written in one MongoDB transaction: the answer is remembered,
        and the event stored, exactly when the change is accepted. False too when the request id
        was recorded first, by a concurrent call of the same request.
        """
        async with within(timeout_s):
            if answer is None and (event is None or event.document is None):
                return await self._set_latest(transaction_id, previous, record, None)
            carried = event or CarriedEvent(self.audit_log, {}, take=False)
            return await self._accept_together(transaction_id, previous, record, answer, carried)

    async def _accept_together(
        self,
        transaction_id: str,
        previous: int,
        record: Document,
        answer: Document | None,
        event: CarriedEvent,
    ) -> bool:
        """The compare-and-set, the answer's insert and the event's in one transaction: all or
        none."""

        async def writes(session: AsyncClientSession) -> bool:
            if not await self._set_latest(transaction_id, previous, record, session):
                return False
            if answer is not None:
                await self.requests.insert_one(answer, session=session)
            return True

        try:
            async with transaction_session(self.requests.database.client) as session:
                return await event.attempt(session, writes)
        except DuplicateKeyError:
            return False  # the latest change's first record, or the answer, was written first
        except OperationFailure as error:
            if error.has_error_label("TransientTransactionError"):
                return False  # a write conflict: a concurrent change was accepted first
            if error.has_error_label("UnknownTransactionCommitResult"):
                raise Unavailable("the database did not answer in time; retry") from error
            raise

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
        """Note that the change of that sequence was confirmed by the broker: on its record,
        then on its note. In that order, one after the other: when time runs out between them,
        the note still waits and the sweep, finding the change confirmed, clears it. Run
        together, the note could be cleared while the record still said unconfirmed (a chaos
        helper found four such after a kill), and then only the next call on the transaction
        would send it again."""
        async with within(timeout_s):
            await self.requests.update_one(
                {"_id": _change_key(transaction_id), "sequence": sequence},
                {"$set": {"confirmed": True}},
            )
            await self.note_sent(unsent_key("status", transaction_id), sequence)

    async def note_unsent(self, key: str, sequence: int, timeout_s: float | None = None) -> None:
        """Note, before accepting it, that the change or rating of key (unsent_key) numbered
        sequence (a rating's is 0) may be accepted and not yet published: should this process
        stop before it is, another intake sends it (left_unsent.py)."""
        async with within(timeout_s):
            # Never lowered: a slow call's note of change 2, written after another intake's of
            # change 3, let the confirm of 2 clear the note while 3 was still unsent.
            await self.unsent.update_one(
                {"_id": key},
                {"$set": {"since": utcnow()}, "$max": {"sequence": sequence}},
                upsert=True,
            )

    async def note_sent(self, key: str, sequence: int, timeout_s: float | None = None) -> None:
        """The change of key numbered sequence, and any before it, was seen published: the
        note waits no more (it loses its `since`, records.UNSENT_COLLECTION)."""
        async with within(timeout_s):
            await self.unsent.update_one(
                {"_id": key, "sequence": {"$lte": sequence}}, {"$unset": {"since": ""}}
            )

    async def left_unsent(
        self, before: datetime, limit: int, timeout_s: float | None = None
    ) -> list[tuple[str, datetime]]:
        """Keys noted unsent before `before`, oldest first, with when they were noted."""
        async with within(timeout_s):
            found = self.unsent.find({"since": {"$lt": before}}).sort("since", 1).limit(limit)
            return [(doc["_id"], doc["since"]) async for doc in found]

    async def forget_unsent(
        self, key: str, since: datetime, timeout_s: float | None = None
    ) -> None:
        """Key's note, as it was read, waits no more (a note written since, by a newer change,
        still waits)."""
        async with within(timeout_s):
            await self.unsent.update_one({"_id": key, "since": since}, {"$unset": {"since": ""}})

    async def _claim(
        self,
        record: Document,
        timeout_s: float | None,
        claimed_late: Callable[[], None] | None = None,
    ) -> Document:
        """The coalesced insert within timeout_s (pymongo.timeout cannot reach the shared
        batch, which runs in a context of its own); the winner's read under sanad.mongo.within."""
        if timeout_s is not None and timeout_s <= 0:
            raise Unavailable("no time left of the caller's deadline to reach the database")
        ends = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            await self.claims.insert(record, claimed_late, timeout_s=timeout_s)
        except TimeoutError as error:
            raise Unavailable("the database did not answer in time; retry later") from error
        except DuplicateKeyError:
            left = None if ends is None else ends - time.monotonic()
            async with within(left):
                existing = await self.requests.find_one({"_id": record["_id"]})
            if existing is None:  # removed between the two calls; claim again
                return await self._claim(record, left, claimed_late)
            return existing
        except PyMongoError as error:
            if transient(error):
                raise Unavailable("the database did not answer in time; retry later") from error
            raise
        return record
