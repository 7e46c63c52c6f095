"""Reads of the rollups the workers maintain; never of raw transactions."""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


class MetricsStore:
    """`rollups`: one document per day x centre x service."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.rollups = db["rollups"]

    async def center_rollups(self, center_id: str, first_day: str, last_day: str) -> list[Document]:
        """Rollups of a centre with first_day <= day < last_day (ISO dates)."""
        query = {"center_id": center_id, "day": {"$gte": first_day, "$lt": last_day}}
        return await self.rollups.find(query).to_list()
