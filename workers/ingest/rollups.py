"""Rollups: counters per day x centre x service, maintained from newly stored transactions.

Increments are computed only for transactions this micro-batch actually
inserted, inside the same MongoDB transaction as the inserts, so a redelivered
message can never count twice.
"""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

Document = dict[str, Any]


def rollup_key(day: str, center_id: str, service_code: str) -> str:
    """The _id of one rollup document."""
    return f"{day}|{center_id}|{service_code}"


def submitted_increments(documents: Iterable[Document]) -> dict[str, tuple[Document, Document]]:
    """For each rollup touched: ($setOnInsert dimensions, $inc counters)."""
    found: dict[str, tuple[Document, Document]] = {}
    counters: dict[str, defaultdict[str, int]] = {}
    for doc in documents:
        day = doc["submit_time"].strftime("%Y-%m-%d")
        key = rollup_key(day, doc["center_id"], doc["service_code"])
        if key not in found:
            dimensions = {
                "day": day,
                "center_id": doc["center_id"],
                "service_code": doc["service_code"],
                "governorate_code": doc["governorate_code"],
                "wilayat_code": doc["wilayat_code"],
                "agency_code": doc["agency_code"],
            }
            counters[key] = defaultdict(int)
            found[key] = (dimensions, counters[key])
        counters[key]["submitted"] += 1
        counters[key]["recorded"] += 1
        counters[key]["fees_baisa"] += doc["fee_baisa"]
    return {k: (dims, dict(inc)) for k, (dims, inc) in found.items()}
