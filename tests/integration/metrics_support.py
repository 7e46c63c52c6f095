"""The real registry and metrics served in-process over one test's database, and rollups written
through the ingest worker's own writer."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from pymongo import AsyncMongoClient

from sanad.v1 import metrics_pb2_grpc, registry_pb2, registry_pb2_grpc
from services.metrics.app import build_app as build_metrics
from services.metrics.directory import WatchedDirectory
from services.metrics.settings import MetricsSettings
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.integration.conftest import eventually, in_process_settings
from workers.ingest.store import IngestStore
from workers.storage.rollups import RollupIncrements


def governorate_of(wilayat: str) -> str:
    return wilayat.split("-", maxsplit=1)[0]


@dataclass
class Apps:
    registry: registry_pb2_grpc.RegistryServiceStub
    metrics: metrics_pb2_grpc.MetricsServiceStub
    writer: IngestStore
    directory: WatchedDirectory

    async def until_metrics_knows(
        self, center_id: str, omani_staff: int, wilayat: str | None = None
    ) -> None:
        """The registry's change has reached metrics' directory through the watch stream."""

        async def known() -> bool:
            found = (await self.directory.centers_by_id([center_id])).get(center_id)
            return (
                found is not None
                and found.omani_staff == omani_staff
                and wilayat in (None, found.wilayat_code)
            )

        await eventually(known, within_s=5, every_s=0.01)


async def build_rollup_indexes(mongo_url: str, database_name: str) -> None:
    """The indexes the ingest worker builds at its start, built by its store: metrics builds
    none, and is NOT_SERVING until they exist."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await IngestStore(client, client[database_name]).ensure_indexes()
    finally:
        await client.close()


@asynccontextmanager
async def running_apps(mongo_url: str, database_name: str, **metrics: Any) -> AsyncIterator[Apps]:
    """Registry and metrics on free ports; `metrics` adds to the metrics service's settings.

    The rollup indexes are built first (build_rollup_indexes): metrics is ready once they exist.
    """
    await build_rollup_indexes(mongo_url, database_name)
    common = in_process_settings(mongo_url, database_name, shutdown_grace_s=0.5)
    registry = build_registry(RegistrySettings(**common))
    registry_port = await registry.start(0)
    target = metrics.pop("registry_target", f"127.0.0.1:{registry_port}")
    metrics_app = build_metrics(MetricsSettings(**common, registry_target=target, **metrics))
    metrics_port = await metrics_app.start(0)
    assert metrics_app.indexes.built
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in (registry_port, metrics_port)]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    writer = IngestStore(client, client[database_name])  # type: ignore[arg-type]
    try:
        yield Apps(
            registry_pb2_grpc.RegistryServiceStub(channels[0]),
            metrics_pb2_grpc.MetricsServiceStub(channels[1]),
            writer,
            metrics_app.directory,
        )
    finally:
        await client.close()
        for channel in channels:
            await channel.close()
        await metrics_app.stop()
        await registry.stop()


async def register(apps: Apps, wilayat: str, staff: int, name: str) -> str:
    reply = await apps.registry.RegisterCenter(
        registry_pb2.RegisterCenterRequest(
            center=registry_pb2.Center(
                name_ar=name,
                name_en=name,
                owner_establishment="مؤسسة",
                governorate_code=governorate_of(wilayat),
                wilayat_code=wilayat,
                omani_staff=staff,
                total_staff=staff,
                licence=registry_pb2.Licence(number=f"LIC-{time.time_ns()}"),
            )
        )
    )
    await apps.until_metrics_knows(reply.center.id, staff)
    return str(reply.center.id)


Rollup = tuple[str, dict[str, object], dict[str, int]]


def rollup(day: str, center: str, wilayat: str, **counters: object) -> Rollup:
    """One day's increments of a centre's service, histogram given as a nested dict."""
    flat: dict[str, int] = {}
    for name, value in counters.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{bucket}": amount for bucket, amount in value.items()})
        else:
            flat[name] = int(value)  # type: ignore[call-overload]
    facts = {
        "center_id": center,
        "service_code": "SVC",
        "governorate_code": governorate_of(wilayat),
        "wilayat_code": wilayat,
        "agency_code": "ROP",
    }
    return day, facts, flat


async def count(apps: Apps, rows: list[Rollup]) -> None:
    """Write the rows through the workers' own rollup writer: daily, monthly and yearly."""
    increments = RollupIncrements()
    for day, facts, counters in rows:
        increments.add(facts, day, counters)
    await apps.writer.in_transaction(
        "test", lambda session: apps.writer._count(increments, session)
    )
