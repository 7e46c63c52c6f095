"""Reads of the rollups the workers maintain; never of raw transactions."""

import asyncio
from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from sanad import mongo, rollups
from services.metrics import periods
from services.metrics.domain import BUCKETS

Document = dict[str, Any]
# What a yearly row of year_by_place is keyed by: the centre and the place it worked in.
PLACE_KEYS = ("center_id", "governorate_code", "wilayat_code")


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
    """The rollups: per day x centre x service, and per month and per year x centre.

    Every read runs within timeout_s (sanad.mongo.bounded): a database that is down or slow is
    UNAVAILABLE to the caller, never INTERNAL.
    """

    def __init__(self, db: AsyncDatabase[Document], timeout_s: float = 5.0) -> None:
        self.db = db
        self.rollups = db[rollups.COLLECTION]
        self.timeout_s = timeout_s

    async def check_indexes(self) -> None:
        """Raise IndexesMissing unless the indexes the aggregations below rely on all exist.

        Metrics builds none: the ingest worker builds them at its start, before it stores a
        rollup, so metrics' MongoDB user needs no createIndex (with it, a stolen credential could
        build a TTL index that deletes every rollup).
        """
        await mongo.require_indexes(self.db, rollups.INDEXES, builder="the ingest worker")

    @mongo.bounded
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
        """Counters summed over days[0] <= day < days[1], one row per group_by value.

        group_by and dimension are centre-level fields (kept by every rollup grain); each piece
        of the range is read from the coarsest grain that covers it (services/metrics/periods.py).
        """
        group: Document = {
            "_id": f"${group_by}" if group_by else None,
            **_sums(counters, histogram),
        }
        parts = await asyncio.gather(
            *(self._sum_piece(piece, dimension, value, group) for piece in periods.pieces(*days))
        )
        return [_unflatten(row) for row in _merged(parts)]

    @mongo.bounded
    async def year_by_place(
        self,
        year: int,
        *,
        governorate_code: str | None = None,
        center_ids: Sequence[str] | None = None,
        counters: Sequence[str] = rollups.COUNTERS,
        histogram: bool = True,
    ) -> list[Document]:
        """The year's yearly rollups summed per centre and place (one row per centre, governorate
        and wilayat), of one governorate's transactions or of the named centres' anywhere.

        Each row: center_id, governorate_code, wilayat_code and the counters in rollup shape.
        """
        match: Document = {"period": f"{year:04d}"}
        if governorate_code is not None:
            match["governorate_code"] = governorate_code
        if center_ids is not None:
            match["center_id"] = {"$in": list(center_ids)}
        group: Document = {
            "_id": {name: f"${name}" for name in PLACE_KEYS},
            **_sums(counters, histogram),
        }
        cursor = await self.db[rollups.YEARLY].aggregate([{"$match": match}, {"$group": group}])
        rows = []
        async for row in cursor:
            key = row["_id"]
            rows.append({**_unflatten(row), **{name: key.get(name) for name in PLACE_KEYS}})
        return rows

    async def _sum_piece(
        self, piece: periods.Piece, dimension: str, value: str, group: Document
    ) -> list[Document]:
        match = {dimension: value, piece.field: {"$gte": piece.low, "$lt": piece.high}}
        cursor = await self.db[piece.collection].aggregate([{"$match": match}, {"$group": group}])
        return [row async for row in cursor]


def _merged(parts: Sequence[list[Document]]) -> list[Document]:
    """Rows of several pieces added up per group key (one piece: its rows as they are)."""
    if len(parts) == 1:
        return parts[0]
    totals: dict[Any, Document] = {}
    for rows in parts:
        for row in rows:
            total = totals.setdefault(row["_id"], {"_id": row["_id"]})
            for name, amount in row.items():
                if name != "_id":
                    total[name] = total.get(name, 0) + (amount or 0)
    return list(totals.values())
