"""Reads of the rollups the workers maintain; never of raw transactions."""

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sanad import rollups
from services.metrics.domain import BUCKETS

Document = dict[str, Any]


def _sums(counters: Sequence[str], histogram: bool) -> Document:
    """$group accumulators: the named counters (and the histogram buckets) summed.

    Summing only what a query needs matters: each accumulator costs per rollup document.
    """
    fields: Document = {name: {"$sum": f"${name}"} for name in counters}
    if histogram:
        for bucket in BUCKETS:
            fields[f"hist_{bucket}"] = {"$sum": f"${rollups.HISTOGRAM}.{bucket}"}
    return fields


def _unflatten(group: Document) -> Document:
    """A $group row back into rollup shape (histogram nested)."""
    row = {name: group.get(name, 0) for name in rollups.COUNTERS}
    row[rollups.HISTOGRAM] = {bucket: group.get(f"hist_{bucket}", 0) for bucket in BUCKETS}
    row["_id"] = group["_id"]
    return row


class MetricsStore:
    """`rollups`: one document per day x centre x service."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.rollups = db[rollups.COLLECTION]

    async def ensure_indexes(self) -> None:
        """The indexes the aggregations below rely on; safe to repeat."""
        for dimension in ("center_id", "wilayat_code", "governorate_code"):
            await self.rollups.create_index([(dimension, ASCENDING), ("day", ASCENDING)])

    async def sums_by(
        self,
        dimension: str,
        value: str,
        days: tuple[str, str],
        group_by: str | None,
        *,
        counters: Sequence[str] = rollups.COUNTERS,
        histogram: bool = True,
    ) -> list[Document]:
        """Counters summed over days[0] <= day < days[1], one row per group_by value."""
        match = {dimension: value, "day": {"$gte": days[0], "$lt": days[1]}}
        group: Document = {
            "_id": f"${group_by}" if group_by else None,
            **_sums(counters, histogram),
        }
        cursor = await self.rollups.aggregate([{"$match": match}, {"$group": group}])
        return [_unflatten(row) async for row in cursor]
