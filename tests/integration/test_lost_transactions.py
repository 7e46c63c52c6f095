"""A transaction cut off from MongoDB mid-way is ended on the server once it answers again
(sanad.lost_sessions): without that, SecantusDB (as MongoDB) kept it open, holding what it
wrote, for its 60 s lifetime, and every transaction writing the same document met a write
conflict until then (a worker stored nothing for a minute after an outage)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pymongo
import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, ExecutionTimeout, ServerSelectionTimeoutError

from sanad import lost_sessions
from sanad.amqp.verdicts import TransientError
from sanad.errors import Unavailable
from sanad.mongo import within
from services.registry.domain import CatalogService
from services.registry.store import RegistryStore
from tests.integration.conftest import StoppableDatabase
from workers.storage import atomic

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client(stoppable_database: StoppableDatabase) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        stoppable_database.url, socketTimeoutMS=1000, serverSelectionTimeoutMS=1000
    )
    await client.sanad.rollups.insert_one({"_id": "day|C1|S1", "submitted": 0})
    yield client
    await client.close()


def counting(client: AsyncMongoClient[Any]) -> Any:
    async def body(session: AsyncClientSession) -> None:
        await client.sanad.rollups.update_one(
            {"_id": "day|C1|S1"}, {"$inc": {"submitted": 1}}, session=session
        )

    return body


@pytest.mark.parametrize("cut_off_by", ["the connection", "the caller's deadline"])
async def test_the_next_transaction_on_the_same_document_commits_at_once(
    cut_off_by: str,
    client: AsyncMongoClient[Any],
    stoppable_database: StoppableDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(atomic, "CONFLICT_WINDOW_S", 0.0)  # a write conflict fails at once
    rollups = client.sanad.rollups

    async def frozen_between_statements(session: AsyncClientSession) -> None:
        await rollups.find_one({"_id": "day|C1|S1"}, session=session)  # the transaction starts
        stoppable_database.freeze()  # its write reaches the server, which takes it on thawing
        await rollups.update_one({"_id": "day|C1|S1"}, {"$inc": {"submitted": 1}}, session=session)

    if cut_off_by == "the connection":
        with pytest.raises(TransientError, match="MongoDB unreachable"):
            await atomic.run_atomically(client, "count", frozen_between_statements)
    else:
        with pytest.raises(Unavailable):
            async with within(0.5):
                await atomic.run_atomically(client, "count", frozen_between_statements)
    assert lost_sessions.lost_count(client) == 1
    # Clients compare equal by their hosts: another one's sessions are not this one's.
    other: AsyncMongoClient[Any] = AsyncMongoClient(stoppable_database.url)
    assert other == client
    assert lost_sessions.lost_count(other) == 0
    await other.close()

    await lost_sessions.kill_lost(client)  # the server does not answer yet: kept for later
    assert lost_sessions.lost_count(client) == 1

    stoppable_database.thaw()
    await atomic.run_atomically(client, "count", counting(client))

    assert lost_sessions.lost_count(client) == 0
    assert await rollups.find_one({"_id": "day|C1|S1"}) == {"_id": "day|C1|S1", "submitted": 1}


async def test_a_failure_the_server_answered_notes_nothing(client: AsyncMongoClient[Any]) -> None:
    async def duplicate(session: AsyncClientSession) -> None:
        await client.sanad.rollups.insert_one({"_id": "day|C1|S1"}, session=session)

    with pytest.raises(DuplicateKeyError):
        await atomic.run_atomically(client, "count", duplicate)

    assert lost_sessions.lost_count(client) == 0
    await atomic.run_atomically(client, "count", counting(client))


class FreezeOnCounter(monitoring.CommandListener):
    """Freezes the database as the registry's first revision counter update goes out: the
    update reaches the server, which takes it (and so its transaction's hold on the counter)
    once thawed, after the caller has given up."""

    def __init__(self, database: StoppableDatabase) -> None:
        self.database = database
        self.armed = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.armed and event.command_name == "findAndModify":
            self.armed = False
            self.database.freeze()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_registry_takes_writes_at_once_after_one_was_cut_off(
    stoppable_database: StoppableDatabase,
) -> None:
    # Every registry write moves one revision counter: a transaction left open on it refused
    # every write (UNAVAILABLE after the store's time) until the server ended it, 60 s later.
    freezer = FreezeOnCounter(stoppable_database)
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        stoppable_database.url, serverSelectionTimeoutMS=1000, event_listeners=[freezer]
    )
    store = RegistryStore(client, client.sanad, timeout_s=2.0)
    try:
        await store.save_service(CatalogService("S1", "ROP", "ع", "s", 1, 1), new=True)
        freezer.armed = True
        with pytest.raises(Unavailable):
            await store.save_service(CatalogService("S2", "ROP", "ع", "s", 1, 1), new=True)
        stoppable_database.thaw()

        await store.save_service(CatalogService("S3", "ROP", "ع", "s", 1, 1), new=True)

        assert await store.get_service("S2") is None
        assert (await store.get_service("S3")) is not None
        assert await store.head_revision() == 2
    finally:
        await client.close()


async def test_a_transaction_pymongo_timed_out_itself_is_ended_too(
    client: AsyncMongoClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under pymongo.timeout (within() sets it) PyMongo refuses a statement, and the abort, once
    # no time is left, without a word to the server: ExecutionTimeout, no ConnectionFailure.
    monkeypatch.setattr(atomic, "CONFLICT_WINDOW_S", 0.0)
    rollups = client.sanad.rollups

    async def out_of_time() -> None:
        async with lost_sessions.transaction_session(client) as session:
            with pymongo.timeout(0.5):
                async with await session.start_transaction():
                    await rollups.update_one(
                        {"_id": "day|C1|S1"}, {"$inc": {"submitted": 1}}, session=session
                    )
                    await asyncio.sleep(0.6)
                    await rollups.find_one({"_id": "day|C1|S1"}, session=session)

    with pytest.raises(ExecutionTimeout):
        await out_of_time()
    assert lost_sessions.lost_count(client) == 1

    await atomic.run_atomically(client, "count", counting(client))

    assert await rollups.find_one({"_id": "day|C1|S1"}) == {"_id": "day|C1|S1", "submitted": 1}


async def test_a_block_that_never_reached_the_server_notes_nothing() -> None:
    # Its session is PyMongo's placeholder: asking its id would draw a pooled session, which
    # the next transaction's killSessions would end under whatever operation took it.
    unreachable: AsyncMongoClient[Any] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=200
    )

    async def insert() -> None:
        async with (
            lost_sessions.transaction_session(unreachable) as session,
            await session.start_transaction(),
        ):
            await unreachable.sanad.rollups.insert_one({}, session=session)

    try:
        with pytest.raises(ServerSelectionTimeoutError):
            await insert()
        assert lost_sessions.lost_count(unreachable) == 0
    finally:
        await unreachable.close()
