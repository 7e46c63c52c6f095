"""Metrics builds no index: it is NOT_SERVING until the ingest worker has built every rollup index
its aggregations rely on, says which is missing and who builds it, and SERVING once they exist."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from sanad import rollups
from services.metrics.app import MetricsApp
from services.metrics.app import build_app as build_metrics
from services.metrics.settings import MetricsSettings
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.integration.conftest import eventually, in_process_settings
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration

Client = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[Client]:
    connected: Client = AsyncMongoClient(mongo_url)
    yield connected
    await connected.close()


@pytest.fixture
async def metrics(mongo_url: str, database_name: str) -> AsyncIterator[MetricsApp]:
    """Registry and metrics over an empty database, metrics' registry directory ready, so only
    MongoDB's check decides its health."""
    common = in_process_settings(mongo_url, database_name, shutdown_grace_s=0.5)
    registry = build_registry(RegistrySettings(**common))
    registry_port = await registry.start(0)
    app = build_metrics(MetricsSettings(**common, registry_target=f"127.0.0.1:{registry_port}"))
    await app.start(0)

    async def directory_ready() -> bool:
        return app.directory.ready

    try:
        await eventually(directory_ready, within_s=10)
        yield app
    finally:
        await app.stop()
        await registry.stop()


async def serving(app: MetricsApp) -> bool:
    assert app.server is not None
    return await app.server.health.check_once()


def named(collection: str, keys: list[tuple[str, int]]) -> str:
    """An index as the log names it: collection and MongoDB's default index name."""
    return collection + "." + "_".join(f"{field}_{direction}" for field, direction in keys)


async def index_keys(client: Client, database_name: str, collection: str) -> list[object]:
    info = await client[database_name][collection].index_information()
    return [spec["key"] for spec in info.values()]


async def test_metrics_is_not_serving_on_a_database_where_ingest_never_ran(
    metrics: MetricsApp, client: Client, database_name: str
) -> None:
    assert not await serving(metrics)
    assert not await serving(metrics)  # a second check builds nothing either
    names = await client[database_name].list_collection_names()
    assert not {collection for collection, _ in rollups.INDEXES} & set(names), names


async def test_metrics_waits_for_each_missing_rollup_index_until_ingest_builds_it(
    metrics: MetricsApp, client: Client, database_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    *built, (collection, keys) = rollups.INDEXES  # every index but the yearly grain's last
    for built_collection, built_keys in built:
        await client[database_name][built_collection].create_index(built_keys)

    with caplog.at_level(logging.WARNING, logger="sanad.mongo"):
        assert not await serving(metrics)
        assert not await serving(metrics)
    assert keys not in await index_keys(client, database_name, collection)  # metrics built none
    said = [r.getMessage() for r in caplog.records if named(collection, keys) in r.getMessage()]
    assert said, caplog.text
    assert "ingest worker" in said[-1]
    assert not [named(c, k) for c, k in built if named(c, k) in said[-1]], said[-1]

    await IngestStore(client, client[database_name]).ensure_indexes()
    await eventually(lambda: serving(metrics), within_s=10)
    assert metrics.indexes.built
