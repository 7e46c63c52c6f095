"""A database an earlier version created stops paying for the indexes the code no longer reads:
the ingest worker and the registry drop them at start, and keep every other index."""

from collections.abc import AsyncIterator

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad import records
from sanad.retired_indexes import RETIRED, drop_retired
from sanad.security import audit
from services.registry.store import RegistryStore
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration

Document = dict[str, object]


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_url)
    yield client
    await client.close()


async def names(db: AsyncDatabase[Document], collection: str) -> set[str]:
    return {index["name"] async for index in await db[collection].list_indexes()}


async def old_database(db: AsyncDatabase[Document]) -> None:
    """The indexes the versions before 2026-12-01 created, and one an operator added by hand."""
    transactions = db[records.COLLECTION]
    await transactions.create_index(
        [("center_id", ASCENDING), ("status", ASCENDING), ("submit_time", DESCENDING)]
    )
    await transactions.create_index([("center_id", ASCENDING), ("submit_time", DESCENDING)])
    await transactions.create_index("agency_code", name="by_hand")
    await db[audit.COLLECTION].create_index([("time", DESCENDING)])
    await db["registry_centers"].create_index(
        [("governorate_code", ASCENDING), ("wilayat_code", ASCENDING)]
    )


async def test_owners_drop_the_retired_indexes_at_start_and_keep_the_rest(
    client: AsyncMongoClient[Document], database_name: str
) -> None:
    db = client[database_name]
    await old_database(db)
    retired = {name for names_ in RETIRED.values() for name in names_}
    assert retired <= (
        await names(db, records.COLLECTION)
        | await names(db, audit.COLLECTION)
        | await names(db, "registry_centers")
    )

    await IngestStore(client, db).ensure_indexes()
    await RegistryStore(client, db).ensure_indexes()  # type: ignore[arg-type]

    transactions = await names(db, records.COLLECTION)
    assert transactions == {"_id_", "center_id_1_submit_time_-1__id_-1", "by_hand"}
    assert await names(db, audit.COLLECTION) == {"_id_"}
    centres = await names(db, "registry_centers")
    assert "governorate_code_1_wilayat_code_1" not in centres
    assert {"governorate_code_1__id_1", "wilayat_code_1__id_1"} <= centres


async def test_dropping_is_idempotent_and_a_new_database_has_nothing_to_drop(
    client: AsyncMongoClient[Document], database_name: str
) -> None:
    db = client[database_name]
    # A new database: no audit_log yet when the worker starts.
    await IngestStore(client, db).ensure_indexes()
    await old_database(db)
    collections = list(RETIRED)
    assert len(await drop_retired(db, collections)) == 4
    assert await drop_retired(db, collections) == []


async def test_collections_that_never_had_the_retired_indexes_report_no_drop(
    client: AsyncMongoClient[Document], database_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = client[database_name]
    # A fresh database: one collection exists without the old index, the others not at all.
    await db[audit.COLLECTION].insert_one({"fresh": True})
    with caplog.at_level("INFO", logger="sanad.mongo"):
        assert await drop_retired(db, list(RETIRED)) == []
    assert "dropped retired index" not in caplog.text
