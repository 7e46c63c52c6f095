"""MongoDB side of the batch worker: its answers in `batch_results`, items via the ingest store."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from sanad.amqp.consumer import TransientError
from sanad.domain.clock import to_millisecond
from workers.ingest.store import IngestStore

Document = dict[str, Any]


class BatchStore:
    """One `batch_results` document per batch id: who sent it, when it started, the
    fingerprint of its content, its answer."""

    def __init__(self, transactions: IngestStore, db: AsyncDatabase[Document]) -> None:
        self.transactions = transactions
        self.results = db["batch_results"]

    async def claim(
        self, batch_id: str, submitted_by: str, center_id: str, now: datetime, fingerprint: str
    ) -> tuple[Document, bool]:
        """The batch's record, created on first sight (then fresh is True); its started_at and
        fingerprint are those of the first sight, whatever later attempts bring."""
        record = {
            "_id": batch_id,
            "submitted_by": submitted_by,
            "center_id": center_id,
            # As stored: an attempt after this one reads it back at BSON's millisecond.
            "started_at": to_millisecond(now),
            "fingerprint": fingerprint,
        }
        try:
            found = await self.results.find_one_and_update(
                {"_id": batch_id},
                {"$setOnInsert": {k: v for k, v in record.items() if k != "_id"}},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return (record, True) if found is None else (found, False)

    async def stored_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ids under which a transaction is stored."""
        try:
            found = await self.transactions.find_by_ids(ids, projection={"_id": 1})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return {doc["_id"] for doc in found}

    async def store_chunk(self, documents: Sequence[Document]) -> int:
        """Store accepted items with their rollups in one transaction; returns the new ones."""
        return await self.transactions.record_submissions(documents)

    async def save_result(
        self, batch_id: str, result: bytes, accepted: int, rejected: int
    ) -> bytes | None:
        """Remember the answer, so the same batch id gets it again without storing anything;
        unless an answer is saved already (a concurrent attempt's): then that one is returned
        and kept."""
        try:
            saved = await self.results.update_one(
                {"_id": batch_id, "result": {"$exists": False}},
                {"$set": {"result": result, "accepted": accepted, "rejected": rejected}},
            )
            if saved.matched_count == 1:
                return None
            return await self.saved_result(batch_id)
        except PyMongoError as error:
            raise TransientError(str(error)) from error

    async def replace_result(
        self, batch_id: str, old: bytes, new: bytes, accepted: int, rejected: int
    ) -> bool:
        """Save a corrected answer in place of `old`, if `old` is still the saved one."""
        try:
            saved = await self.results.update_one(
                {"_id": batch_id, "result": old},
                {"$set": {"result": new, "accepted": accepted, "rejected": rejected}},
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        return saved.matched_count == 1

    async def saved_result(self, batch_id: str) -> bytes:
        """The saved answer of a batch that has one."""
        try:
            found = await self.results.find_one({"_id": batch_id}, {"result": 1})
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        if found is None or "result" not in found:
            # Only a record deleted by hand meanwhile; its next attempt starts it again.
            raise TransientError(f"batch {batch_id!r} has no saved answer")
        return bytes(found["result"])
