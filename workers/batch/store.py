"""MongoDB side of the batch worker: its answers in `batch_results`, items via the ingest store."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from sanad.amqp.consumer import TransientError
from workers.ingest.store import IngestStore

Document = dict[str, Any]


class BatchStore:
    """One `batch_results` document per batch id: who sent it, when it started, its answer."""

    def __init__(self, transactions: IngestStore, db: AsyncDatabase[Document]) -> None:
        self.transactions = transactions
        self.results = db["batch_results"]

    async def claim(
        self, batch_id: str, submitted_by: str, center_id: str, now: datetime
    ) -> Document:
        """The batch's record, created on first sight; its started_at is stable across retries."""
        try:
            found = await self.results.find_one_and_update(
                {"_id": batch_id},
                {
                    "$setOnInsert": {
                        "submitted_by": submitted_by,
                        "center_id": center_id,
                        "started_at": now,
                    }
                },
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error
        assert found is not None
        return found

    async def store_chunk(self, documents: Sequence[Document]) -> int:
        """Store accepted items with their rollups in one transaction; returns the new ones."""
        return await self.transactions.record_submissions(documents)

    async def save_result(self, batch_id: str, result: bytes, accepted: int, rejected: int) -> None:
        """Remember the answer, so the same batch id gets it again without storing anything."""
        try:
            await self.results.update_one(
                {"_id": batch_id},
                {"$set": {"result": result, "accepted": accepted, "rejected": rejected}},
            )
        except PyMongoError as error:
            raise TransientError(str(error)) from error
