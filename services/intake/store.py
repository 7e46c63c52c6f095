"""Intake's storage: idempotency records it writes, and transactions the workers write."""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Document = dict[str, Any]


class IntakeStore:
    """`intake_requests` (one per caller and request id) and reads of `transactions`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.requests = db["intake_requests"]
        self.transactions = db["transactions"]

    async def claim_request(
        self, key: str, transaction_id: str, fingerprint: str, submit_time: datetime
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
        try:
            await self.requests.insert_one(record)
        except DuplicateKeyError:
            existing = await self.requests.find_one({"_id": key})
            if existing is None:  # removed between the two calls; claim again
                return await self.claim_request(key, transaction_id, fingerprint, submit_time)
            return existing
        return record

    async def get_transaction(self, transaction_id: str) -> Document | None:
        return await self.transactions.find_one({"_id": transaction_id})
