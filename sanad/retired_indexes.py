"""Indexes earlier versions created and no query reads any more, dropped when their owner starts.

Every index costs every write to its collection, so a database that an earlier version created
keeps paying for the ones the code stopped declaring. Only these names are dropped, never an
index someone added by hand. Dropping is idempotent: an index already gone (dropped at an
earlier start, or by a replica starting at the same time) is skipped.
"""

import logging
from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from sanad import records
from sanad.security import audit

log = logging.getLogger("sanad.mongo")
INDEX_NOT_FOUND = 27

# Collection -> names of the indexes it no longer needs, and what replaced each.
RETIRED: dict[str, tuple[str, ...]] = {
    # Both replaced by records.LISTING_INDEX, which also carries the sort's tie-break.
    records.COLLECTION: ("center_id_1_status_1_submit_time_-1", "center_id_1_submit_time_-1"),
    # Audit events are ordered and windowed by their time-sortable _id.
    audit.COLLECTION: ("time_-1",),
    # Replaced by (governorate_code, _id) and (wilayat_code, _id), which serve every page.
    "registry_centers": ("governorate_code_1_wilayat_code_1",),
}


async def drop_retired(db: AsyncDatabase[dict[str, Any]], collections: Iterable[str]) -> list[str]:
    """Drop the retired indexes these collections still have; the `collection.index` dropped."""
    dropped = []
    for collection in collections:
        retired = RETIRED.get(collection, ())
        if not retired:
            continue
        # Only what the collection has: SecantusDB answers OK to dropping an index of a
        # collection that does not exist, which logged a drop on every fresh database.
        present = await db[collection].index_information()
        for name in retired:
            if name not in present:
                continue
            try:  # pymongo ignores a collection that does not exist
                await db[collection].drop_index(name)
            except OperationFailure as error:
                if error.code != INDEX_NOT_FOUND:  # dropped before, or by another replica now
                    raise
                continue
            log.info("dropped retired index %s.%s", collection, name)
            dropped.append(f"{collection}.{name}")
    return dropped
