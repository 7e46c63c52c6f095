"""The development database runs standalone (no oplog) and still runs the workers' transactions."""

import os

import pytest
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_the_dev_database_is_standalone_and_commits_multi_document_transactions(
    mongo_url: str, database_name: str
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        if not os.environ.get("SANAD_TEST_MONGO_URL"):  # a real MongoDB is a replica set
            hello = await client.admin.command("hello")
            assert "setName" not in hello  # standalone: SecantusDB writes no oplog
        db = client[database_name]
        async with client.start_session() as session, await session.start_transaction():
            await db.dev_a.insert_one({"_id": 1}, session=session)
            await db.dev_b.insert_one({"_id": 1}, session=session)
        assert await db.dev_a.count_documents({}) == await db.dev_b.count_documents({}) == 1
        async with client.start_session() as session:
            await session.start_transaction()
            await db.dev_a.insert_one({"_id": 2}, session=session)
            await session.abort_transaction()
        assert await db.dev_a.count_documents({}) == 1  # the aborted insert was rolled back
    finally:
        await client.close()
