"""The development database runs standalone (no oplog), still runs the workers' transactions,
and keeps what it acknowledged when it is killed."""

import os
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from sanad.devstack import mongo_server

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


async def test_the_dev_database_keeps_every_acknowledged_write_when_it_is_killed(
    tmp_path: Path,
) -> None:
    # As a journaled MongoDB keeps a majority write: a claimed request id must not come back
    # unclaimed (and get a second transaction id) after the database process dies.
    port = mongo_server.free_port()
    storage = tmp_path / "data"
    server = mongo_server.start(port, storage, tmp_path / "db.log")
    client: AsyncMongoClient = AsyncMongoClient(mongo_server.url(port), w="majority")
    try:
        for n in range(300):
            await client.durability.claims.insert_one({"_id": n})
        server.kill()  # SIGKILL right after the last acknowledgement: no chance to flush
        server.wait(timeout=30)
        await client.close()
        server = mongo_server.start(port, storage, tmp_path / "db.log")
        client = AsyncMongoClient(mongo_server.url(port))
        assert await client.durability.claims.count_documents({}) == 300
    finally:
        await client.close()
        server.kill()
        server.wait(timeout=30)
