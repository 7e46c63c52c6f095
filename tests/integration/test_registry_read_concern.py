"""Watch streams read the change log and the revision counter at read concern "majority", as
the registry writes them at w=majority: after a replica-set failover no subscriber has been
sent a revision that was rolled back. Against the real MongoDB-wire server (SecantusDB in
development), which must accept it."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from sanad.v1 import registry_pb2 as pb
from services.registry.app import registry_database
from services.registry.settings import RegistrySettings
from services.registry.store import RegistryStore
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    registry_fixture,
)

pytestmark = pytest.mark.integration


class Finds(monitoring.CommandListener):
    """The read concern of each find, by collection."""

    def __init__(self) -> None:
        self.read_concerns: dict[str, list[Any]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            collection = event.command["find"]
            self.read_concerns.setdefault(collection, []).append(event.command.get("readConcern"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(name="finds")
async def finds_fixture(mongo_url: str) -> AsyncIterator[tuple[Finds, AsyncMongoClient[Any]]]:
    finds = Finds()
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, event_listeners=[finds])
    try:
        yield finds, client
    finally:
        await client.close()


async def test_the_change_log_and_the_revision_counter_are_read_at_majority(
    registry: Registry,
    finds: tuple[Finds, AsyncMongoClient[Any]],
    database_name: str,
) -> None:
    listener, client = finds
    added = await registry.add_service("S-1")  # by the served registry, into database_name
    center = await registry.register(offered_service_codes=["S-1"])
    settings = RegistrySettings(mongo_database=database_name)
    store = RegistryStore(client, registry_database(client, settings))

    assert await store.head_revision() == center.revision
    assert [s.code for s in await store.service_changes_after(0)] == [added.code]
    assert [c.id for c in await store.center_changes_after(0)] == [center.id]
    majority = {"level": "majority"}
    assert listener.read_concerns["registry_counters"] == [majority]
    assert listener.read_concerns["registry_changes"] == [majority, majority]


async def test_the_served_registry_reads_at_majority(registry: Registry) -> None:
    for collection in (registry.app.store.changes, registry.app.store.counters):
        assert collection.read_concern.level == "majority"
    center = await registry.register()
    stream = registry.stub.WatchCenters(pb.WatchCentersRequest(since_revision=0))
    try:
        assert (await stream.read()).center.id == center.id
        assert (await stream.read()).synced.revision == center.revision
    finally:
        stream.cancel()
