"""MongoDB writes of the ingest worker: one transaction per micro-batch, with its rollups."""

import time
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from sanad.amqp.consumer import TransientError
from sanad.telemetry.metrics import MONGO_WRITE_SECONDS
from workers.ingest.rollups import submitted_increments

Document = dict[str, Any]


class IngestStore:
    """`transactions` keyed by transaction id and `rollups` keyed by day|centre|service."""

    def __init__(self, client: AsyncMongoClient[Document], db: AsyncDatabase[Document]) -> None:
        self.client = client
        self.transactions = db["transactions"]
        self.rollups = db["rollups"]

    async def ensure_indexes(self) -> None:
        await self.transactions.create_index(
            [("center_id", ASCENDING), ("submit_time", DESCENDING)]
        )
        await self.rollups.create_index([("center_id", ASCENDING), ("day", ASCENDING)])
        await self.rollups.create_index([("governorate_code", ASCENDING), ("day", ASCENDING)])

    async def record_submissions(self, documents: Sequence[Document]) -> int:
        """Insert the documents not yet stored and count them in the rollups, atomically.

        Returns how many were new. Raises TransientError when MongoDB is unreachable.
        """
        started = time.perf_counter()

        async def body(session: AsyncClientSession) -> int:
            result = await self.transactions.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in documents],
                ordered=False,
                session=session,
            )
            new_positions = set(result.upserted_ids or {})
            new_docs = [d for i, d in enumerate(documents) if i in new_positions]
            increments = submitted_increments(new_docs)
            if increments:
                await self.rollups.bulk_write(
                    [
                        UpdateOne({"_id": key}, {"$setOnInsert": dims, "$inc": inc}, upsert=True)
                        for key, (dims, inc) in increments.items()
                    ],
                    ordered=False,
                    session=session,
                )
            return len(new_docs)

        try:
            async with self.client.start_session() as session:
                count: int = await session.with_transaction(body)
        except (ConnectionFailure, OperationFailure) as error:
            if isinstance(error, OperationFailure) and not _is_transient(error):
                raise
            raise TransientError(str(error)) from error
        except PyMongoError as error:
            if error.has_error_label("TransientTransactionError"):
                raise TransientError(str(error)) from error
            raise
        MONGO_WRITE_SECONDS.labels("record_submissions").observe(time.perf_counter() - started)
        return count


def _is_transient(error: PyMongoError) -> bool:
    return error.has_error_label("TransientTransactionError") or error.has_error_label(
        "RetryableWriteError"
    )
