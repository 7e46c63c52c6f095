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

        Read with find and summed here, not grouped by the server: a yearly document is already
        one centre's year in one place (earlier versions' `YYYY|centre` documents make a second
        one now and then), so a $group would hand back nearly the documents it was given, and
        SecantusDB evaluates every accumulator of every document in Python (about half of a
        report's time there).
        """
        query: Document = {"period": f"{year:04d}"}
        if governorate_code is not None:
            query["governorate_code"] = governorate_code
        if center_ids is not None:
            query["center_id"] = {"$in": list(center_ids)}
        wanted = [*PLACE_KEYS, *counters, *([rollups.HISTOGRAM] if histogram else [])]
        rows: dict[tuple[Any, ...], Document] = {}
        async for doc in self.db[rollups.YEARLY].find(query, dict.fromkeys(wanted, 1)):
            key = tuple(doc.get(name) for name in PLACE_KEYS)
            if (row := rows.get(key)) is None:
                rows[key] = row = _empty_row(key)
            _add(row, doc, counters, histogram)
        return list(rows.values())

    async def _sum_piece(
        self, piece: periods.Piece, dimension: str, value: str, group: Document
    ) -> list[Document]:
        match = {dimension: value, piece.field: {"$gte": piece.low, "$lt": piece.high}}
        cursor = await self.db[piece.collection].aggregate([{"$match": match}, {"$group": group}])
        return [row async for row in cursor]


def _empty_row(key: tuple[Any, ...]) -> Document:
    """A year_by_place row of zeros, in rollup shape, keyed as a $group by PLACE_KEYS is."""
    place = dict(zip(PLACE_KEYS, key, strict=True))
    row: Document = {"_id": place, **dict.fromkeys(rollups.COUNTERS, 0), **place}
    row[rollups.HISTOGRAM] = dict.fromkeys(BUCKETS, 0)
    return row


def _add(row: Document, doc: Document, counters: Sequence[str], histogram: bool) -> None:
    """The document's counters (and histogram buckets) added to the row, as $sum adds them:
    numbers only, a missing or non-numeric value as nothing."""
    for name in counters:
        row[name] += _number(doc.get(name))
    if histogram:
        found = doc.get(rollups.HISTOGRAM)
        if isinstance(found, dict):
            buckets = row[rollups.HISTOGRAM]
            for bucket in BUCKETS:
                buckets[bucket] += _number(found.get(bucket))


def _number(value: Any) -> Any:
    """What $sum takes of a value: a number as it is, anything else (absent, null, a string,
    a boolean) as 0."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


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
