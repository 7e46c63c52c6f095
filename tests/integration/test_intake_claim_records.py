"""A submission's claim record in the MongoDB-wire server keeps what its message takes from the
registry, and every later claim or read of its key gets it back, for the replay to publish."""

from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from services.intake.request_store import RequestStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
REGISTRY = {
    "governorate_code": "DA",
    "wilayat_code": "DA-NIZ",
    "agency_code": "ROP",
    "service_version": 3,
    "sla_hours": 48,
}


async def test_the_claims_registry_fields_come_back_to_every_later_claim_and_read(
    mongo_url: str, database_name: str
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        store = RequestStore(client[database_name])
        first = await store.claim_request("key", "T1", "fp", NOW, 5.0, registry=REGISTRY)
        # The retry's claim, made when the catalogue had moved on, meets the first record.
        moved = {**REGISTRY, "service_version": 4, "sla_hours": 24}
        again = await store.claim_request("key", "T2", "fp", NOW, 5.0, registry=moved)
        read = await store.find_request("key", 5.0)
        assert first["registry"] == REGISTRY
        assert again["transaction_id"] == "T1"
        assert again["registry"] == REGISTRY
        assert read is not None
        assert read["registry"] == REGISTRY
    finally:
        await client.close()
