"""A place's listing reads only that place's centres, on every page (the database's own plan)."""

from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from services.registry.documents import all_of, center_query
from services.registry.listing import CenterFilter
from services.registry.store import RegistryStore

pytestmark = pytest.mark.integration

PLACES = [
    ("DA", "DA-NIZ"),
    ("DA", "DA-BAH"),
    ("MA", "MA-SEEB"),
    ("BS", "BS-SUR"),
    ("ZU", "ZU-IBRI"),
]


@pytest.mark.parametrize(
    "wanted", [CenterFilter(governorate_code="DA"), CenterFilter(wilayat_code="DA-NIZ")]
)
async def test_a_later_page_examines_only_the_places_centres_after_its_bound(
    mongo_url: str, database_name: str, wanted: CenterFilter
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        store = RegistryStore(client, client[database_name])  # type: ignore[arg-type]
        await store.ensure_indexes()
        await store.centers.insert_many(
            [
                {
                    "_id": f"C{n:05d}",
                    "governorate_code": g,
                    "wilayat_code": w,
                    "licence": {"number": n},
                }
                for n, (g, w) in ((n, PLACES[n % len(PLACES)]) for n in range(500))
            ]
        )
        # The second page's query, as the store builds it after a first page ending at C00250.
        query = all_of(center_query(wanted, datetime.now(UTC)), {"_id": {"$gt": "C00250"}})
        plan = await store.centers.find(query).sort("_id", 1).limit(51).explain()
        matching = await store.centers.count_documents(query)
    finally:
        await client.close()
    assert 0 < matching < 100
    assert plan["executionStats"]["totalDocsExamined"] == matching
