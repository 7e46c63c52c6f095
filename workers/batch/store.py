"""MongoDB side of the batch worker: its answers in `batch_results`, items through the submission
store both workers share (workers.storage.submissions), its audit events in `audit_log`."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from sanad import records
from sanad.amqp.verdicts import TransientError
from sanad.domain.clock import epoch_millis, to_millisecond
from sanad.domain.ids import first_id
from sanad.security import audit
from workers.storage.submissions import SubmissionStore, found_by_ids

Document = dict[str, Any]
# How far back a redelivered refusal looks for the event an earlier delivery wrote.
REDELIVERY_WINDOW_MS = 15 * 60 * 1000


def record_key(batch_id: str, submitted_by: str) -> str:
    """The id of a batch's record: the batch id among its submitter's own. Each submitter names
    its batches as it likes; with ids shared by all, one user could take the ids another will
    send first (a migration's are predictable) and have its batches refused."""
    return f"{submitted_by}\x1f{batch_id}"


class BatchStore:
    """One `batch_results` document per submitter and batch id: who sent it, when it started,
    the fingerprint of its content, its answer. Its `_id` is the key every later step uses."""

    def __init__(self, transactions: SubmissionStore, db: AsyncDatabase[Document]) -> None:
        self.transactions = transactions
        self.results = db["batch_results"]
        self.audit_log = db[audit.COLLECTION]
        self.requests = db[records.REQUESTS_COLLECTION]

    async def claim(
        self, batch_id: str, submitted_by: str, center_id: str, now: datetime, fingerprint: str
    ) -> tuple[Document, bool]:
        """The batch's record, created on first sight (then fresh is True); its started_at and
        fingerprint are those of the first sight, whatever later attempts bring.

        A record made before records were kept per submitter has the batch id alone as its
        `_id`: found under it with the same submitter, it stays the batch's record, so a batch
        first sent before and sent again after the change keeps its answer and its items' ids.
        The submitter's own record comes first, should an earlier worker have made the other
        later (README: stop the earlier batch workers before this one consumes).
        """
        key = record_key(batch_id, submitted_by)
        record = {
            "_id": key,
            "batch_id": batch_id,
            "submitted_by": submitted_by,
            "center_id": center_id,
            # As stored: an attempt after this one reads it back at BSON's millisecond.
            "started_at": to_millisecond(now),
            "fingerprint": fingerprint,
        }
        try:
            known = {
                doc["_id"]: doc
                async for doc in self.results.find({"_id": {"$in": [key, batch_id]}})
                if doc.get("submitted_by") == submitted_by
            }
            if (earlier := known.get(key, known.get(batch_id))) is not None:
                return earlier, False
            # An insert, which the unique _id lets one attempt win, not an upsert whose empty
            # pre-image says "created": SecantusDB 0.7.0b3 told two workers claiming one batch
            # at once that each had created the record, and both stored every item, under
            # two sets of ids (each from its own started_at).
            await self.results.insert_one(dict(record))
        except DuplicateKeyError:
            return await self._first_claim(key), False
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return record, True

    async def _first_claim(self, key: str) -> Document:
        """The record another attempt created first under key, as stored."""
        try:
            found = await self.results.find_one({"_id": key})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        if found is None:  # removed since: the next attempt claims afresh
            raise TransientError(f"the batch record {key!r} went away while claiming it")
        return found

    async def stored_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ids under which a transaction is stored."""
        try:
            found = await self.transactions.find_by_ids(ids, projection={"_id": 1})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return {doc["_id"] for doc in found}

    async def migrated_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ids under which a migrated transaction is stored."""
        try:
            found = await self.transactions.find_by_ids(ids, projection={"_id": 1, "migrated": 1})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return {doc["_id"] for doc in found if doc.get("migrated")}

    async def store_chunk(
        self, documents: Sequence[Document], requests: Sequence[Document] = ()
    ) -> int:
        """Store accepted items with their rollups, and the records of their request ids, in
        one transaction; returns the new ones. A request id another batch claimed meanwhile
        makes it a TransientError: the next attempt finds that batch's record."""
        return await self.transactions.record_submissions(documents, requests)

    async def request_records(self, keys: Sequence[str]) -> list[Document]:
        """The records of these request keys (intake_requests)."""
        try:
            return await found_by_ids(
                self.requests,
                keys,
                projection={"transaction_id": 1, "fingerprint": 1, "history_fingerprint": 1},
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error

    async def save_result(
        self, key: str, result: bytes, accepted: int, rejected: int, event: Document
    ) -> bytes | None:
        """Remember the answer, so the same batch id gets it again without storing anything,
        and append the batch's audit event in the same transaction; unless an answer is saved
        already (a concurrent attempt's, or this batch's before a redelivery): then that one is
        returned and kept, and no second event is written."""

        async def body(session: AsyncClientSession) -> bytes | None:
            saved = await self.results.update_one(
                {"_id": key, "result": {"$exists": False}},
                {"$set": {"result": result, "accepted": accepted, "rejected": rejected}},
                session=session,
            )
            if saved.matched_count == 1:
                await self.audit_log.insert_one(event, session=session)
                return None
            found = await self.results.find_one({"_id": key}, {"result": 1}, session=session)
            if found is None or "result" not in found:
                # Only a record deleted by hand meanwhile; its next attempt starts it again.
                raise TransientError(f"batch record {key!r} has no saved answer")
            return bytes(found["result"])

        return await self.transactions.in_transaction("save_batch_result", body)

    async def record_refusal(self, event: Document, redelivered: bool = False) -> None:
        """Append the audit event of a batch refused as a whole (nothing else is written).

        A redelivered message (its worker stopped before dead-lettering it) may have had its
        event written: one of the last minutes with the same subject, request id, outcome and
        correlation id is that one. Only redeliveries read first, as they are rare and the
        read scans the window's events.
        """
        try:
            if redelivered and await self._recorded(event):
                return
            await self.audit_log.insert_one(event)
        except DuplicateKeyError:
            return  # an insert that reached the server although its answer was lost
        except PyMongoError as error:
            raise TransientError(str(error)) from error

    async def _recorded(self, event: Document) -> bool:
        since = first_id(epoch_millis(event["time"]) - REDELIVERY_WINDOW_MS)
        same = {
            key: event[key] for key in ("rpc", "subject", "request_id", "outcome", "recorded_by")
        }
        # audit.refused drops an empty correlation id from the target, so "none" is a missing
        # field: an equality with "" would never find the earlier delivery's event.
        correlation_id = event["target"].get("correlation_id") or {"$exists": False}
        same["target.correlation_id"] = correlation_id
        return (
            await self.audit_log.find_one({"_id": {"$gte": since}, **same}, {"_id": 1}) is not None
        )

    async def replace_result(
        self, key: str, old: bytes, new: bytes, accepted: int, rejected: int
    ) -> bool:
        """Save a corrected answer in place of `old`, if `old` is still the saved one."""
        try:
            saved = await self.results.update_one(
                {"_id": key, "result": old},
                {"$set": {"result": new, "accepted": accepted, "rejected": rejected}},
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return saved.matched_count == 1

    async def saved_result(self, key: str) -> bytes:
        """The saved answer of a batch that has one."""
        try:
            found = await self.results.find_one({"_id": key}, {"result": 1})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        if found is None or "result" not in found:
            # Only a record deleted by hand meanwhile; its next attempt starts it again.
            raise TransientError(f"batch record {key!r} has no saved answer")
        return bytes(found["result"])
