"""What both workers write to MongoDB for a submission, in one MongoDB transaction: the transaction
and its rollups, with its audit event (the ingest worker: the event its message carries) or the
record of its request id (the batch worker); and the reads by id that go with it."""

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from sanad import records
from sanad import rollups as contract
from sanad.amqp.verdicts import TransientError
from sanad.security import audit
from workers.storage.atomic import ConcurrentUpdate, run_atomically
from workers.storage.rollups import RollupIncrements

Document = dict[str, Any]
T = TypeVar("T")
DUPLICATE_KEY = 11000
IDS_PER_READ = 100
# After an insert met a stored id, inserts read first which ids are stored for this long.
READ_WINDOW_S = 10.0


class SubmissionStore:
    """`transactions` keyed by transaction id and `rollups` keyed by day|centre|service, as the
    batch worker stores its items (record_submissions) and the ingest worker (IngestStore) its
    submissions.

    A submission's audit event, when its message carries one, goes into `audit_log` in the
    same transaction as the transaction itself, unless the trail holds it already (_insert).
    """

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: AsyncDatabase[Document],
        read_window_s: float = READ_WINDOW_S,
    ) -> None:
        self.client = client
        self.db = db
        self.transactions = db[records.COLLECTION]
        self.rollups = db[contract.COLLECTION]
        self.audit_log = db[audit.COLLECTION]
        self.requests = db[records.REQUESTS_COLLECTION]
        # What reaches a worker is new but for redeliveries and batches sent again, which come
        # in bursts (a worker's unacked messages after it stopped, a batch's chunks). So inserts
        # go straight in; one that meets a stored id fails, its unit is tried again reading
        # first which ids are stored, and so does every insert for read_window_s after. Only
        # the cost depends on this: the unique _id refuses a second copy either way, and only
        # what an insert stored is counted.
        self.read_window_s = read_window_s
        self._stored_id_met_at = -math.inf

    async def record_submissions(
        self, documents: Sequence[Document], requests: Sequence[Document] = ()
    ) -> int:
        """Insert the documents not yet stored and count them in the rollups, atomically; then,
        once committed, as submitted in the live business metrics (the batch worker accepts
        what it stores; migrated documents count in the rollups only). `requests` are records
        of request ids (`intake_requests`) inserted in the same transaction: a request id is
        claimed exactly when its transaction is stored.

        Returns how many were new. Raises TransientError when MongoDB is unreachable, and when
        one of `requests` was recorded meanwhile.
        """

        async def body(session: AsyncClientSession) -> tuple[int, RollupIncrements]:
            increments = RollupIncrements()
            new = await self._insert(documents, increments, session)
            if requests:
                try:
                    await self.requests.insert_many(list(requests), session=session)
                except BulkWriteError as error:
                    if _met_a_stored_key(error):
                        raise TransientError(
                            "a request id of these submissions was recorded meanwhile; the"
                            " next attempt finds its record"
                        ) from error
                    raise
            await self._count(increments, session)
            return new, increments

        new, committed = await self.in_transaction("record_submissions", body)
        committed.observe(accepted_here=True)
        return new

    async def in_transaction(
        self, operation: str, body: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> T:
        """Run body in one MongoDB transaction; an outage becomes TransientError."""
        return await run_atomically(self.client, operation, body)

    async def _insert(
        self,
        documents: Sequence[Document],
        increments: RollupIncrements,
        session: AsyncClientSession,
        audits: Mapping[str, Document] | None = None,
    ) -> int:
        """Insert the documents whose ids are not stored yet, with their audit events; count
        only those.

        One insert_many costs the server far less than an upsert per document. Shortly after
        an insert met a stored id, one indexed read of the ids comes first and only the others
        are inserted. An insert that meets a stored id (stored before, or by a concurrent
        writer between the read and the insert) fails; the whole unit is then tried again.

        The event a message carries is written even when its transaction was stored already:
        a replay of the same request id (its own event written by intake) may have stored it
        first, from a message that carried none. A redelivery finds its event written and
        writes nothing.
        """
        first = _first_of_each_id(documents)
        fresh = dict(first)
        if time.monotonic() - self._stored_id_met_at < self.read_window_s:
            for found in await self.find_by_ids(list(fresh), session, projection={"_id": 1}):
                fresh.pop(found["_id"], None)
        if fresh:
            try:
                await self.transactions.insert_many(list(fresh.values()), session=session)
            except BulkWriteError as error:
                if _met_a_stored_key(error):
                    self._stored_id_met_at = time.monotonic()
                    raise ConcurrentUpdate("a transaction was stored before; retrying") from error
                raise
        if audits:
            await self._write_events(
                audits, fresh, [key for key in first if key not in fresh], session
            )
        for doc in fresh.values():
            increments.stored(doc)
        return len(fresh)

    async def _write_events(
        self,
        audits: Mapping[str, Document],
        inserted: Mapping[str, Document],
        stored_before: Sequence[str],
        session: AsyncClientSession,
    ) -> None:
        """The events of the transactions just inserted (new, so their ids cannot collide:
        event ids are unique per call), and those of transactions stored before that are not
        written yet: read, then inserted, for the trail is append-only (no role may update it).
        One written between the read and the insert by a concurrent writer fails the insert,
        and the whole unit is tried again."""
        events = [audits[key] for key in inserted if key in audits]
        if late := [audits[key] for key in stored_before if key in audits]:
            ids = [event["_id"] for event in late]
            written = {
                doc["_id"]
                async for doc in self.audit_log.find(
                    {"_id": {"$in": ids}}, {"_id": 1}, session=session
                )
            }
            events += [event for event in late if event["_id"] not in written]
        if not events:
            return
        try:
            await self.audit_log.insert_many(events, session=session)
        except BulkWriteError as error:
            if _met_a_stored_key(error):
                raise ConcurrentUpdate("an audit event was written meanwhile; retrying") from error
            raise

    async def find_by_ids(
        self,
        ids: Sequence[str],
        session: AsyncClientSession | None = None,
        projection: Document | None = None,
    ) -> list[Document]:
        """The stored transactions among ids, read IDS_PER_READ ids at a time.

        The development server matches `$in` in time that grows with the square of the list
        (a thousand found ids take a second, a hundred a hundredth of that); MongoDB does not
        care, and a few more reads in the same transaction cost it little.
        """
        return await found_by_ids(self.transactions, ids, session, projection)

    async def _count(self, increments: RollupIncrements, session: AsyncClientSession) -> None:
        """Every touched rollup of every grain, in the caller's transaction."""
        grains = {contract.COLLECTION: increments.items(), **increments.period_items()}
        for collection, items in grains.items():
            if items:
                await self.db[collection].bulk_write(
                    [
                        UpdateOne({"_id": key}, {"$setOnInsert": dims, "$inc": inc}, upsert=True)
                        for key, dims, inc in items
                    ],
                    ordered=False,
                    session=session,
                )


def _first_of_each_id(documents: Sequence[Document]) -> dict[str, Document]:
    """Documents by id, in order; a repeated id keeps its first document (as the upserts of
    earlier versions did)."""
    fresh: dict[str, Document] = {}
    for doc in documents:
        fresh.setdefault(doc["_id"], doc)
    return fresh


async def found_by_ids(
    collection: AsyncCollection[Document],
    ids: Sequence[str],
    session: AsyncClientSession | None = None,
    projection: Document | None = None,
) -> list[Document]:
    """The documents of the collection among ids, read IDS_PER_READ ids at a time (see
    SubmissionStore.find_by_ids)."""
    found: list[Document] = []
    for start in range(0, len(ids), IDS_PER_READ):
        part = list(ids[start : start + IDS_PER_READ])
        cursor = collection.find({"_id": {"$in": part}}, projection=projection, session=session)
        found.extend([doc async for doc in cursor])
    return found


def _met_a_stored_key(error: BulkWriteError) -> bool:
    """Whether an insert_many failed on a key stored already (by a concurrent writer)."""
    return any(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", []))
