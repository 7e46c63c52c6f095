"""The registry app served in-process over gRPC for the registry's integration tests: the
served app and a stub with helpers, the `registry` fixture, and expectations of refusals."""

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sanad.rpc.status import field_violations
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.app import RegistryApp, build_app
from services.registry.settings import RegistrySettings
from tests.integration.conftest import eventually


@dataclass
class Registry:
    stub: registry_pb2_grpc.RegistryServiceStub
    app: RegistryApp

    async def add_service(self, code: str, agency: str = "ROP") -> pb.CatalogService:
        reply = await self.stub.AddCatalogService(
            pb.AddCatalogServiceRequest(
                service=pb.CatalogService(
                    code=code,
                    agency_code=agency,
                    name_ar="تجديد التأشيرة",
                    name_en="Visa renewal",
                    fee_baisa=5000,
                    sla_hours=48,
                    required_documents=["passport"],
                )
            )
        )
        return reply.service

    async def register(self, name_ar: str = "مركز أبراج الشرق", **fields: object) -> pb.Center:
        values: dict[str, object] = {
            "name_ar": name_ar,
            "name_en": "Abraj Centre",
            "owner_establishment": "مؤسسة أبراج الشرق",
            "governorate_code": "DA",
            "wilayat_code": "DA-NIZ",
            "omani_staff": 3,
            "total_staff": 4,
            "licence": pb.Licence(number=f"LIC-{time.time_ns()}"),
            **fields,
        }
        reply = await self.stub.RegisterCenter(
            pb.RegisterCenterRequest(center=pb.Center(**values))  # type: ignore[arg-type]
        )
        return reply.center

    async def act(self, center_id: str, *actions: int) -> pb.Center:
        center = pb.Center()
        for action in actions:
            reply = await self.stub.TransitionLicence(
                pb.TransitionLicenceRequest(center_id=center_id, action=action, reason="test")
            )
            center = reply.center
        return center


@contextlib.asynccontextmanager
async def serve_registry(
    mongo_url: str, database_name: str, **settings: Any
) -> AsyncIterator[Registry]:
    """The registry app on a free port over its own database, and a stub talking to it;
    `settings` adds to or overrides its settings."""
    app = build_app(
        RegistrySettings(
            **{
                "mongo_url": mongo_url,
                "mongo_database": database_name,
                "registry_port": 0,
                "grpc_host": "127.0.0.1",
                "shutdown_grace_s": 0.5,
                "watch_poll_s": 0.1,
                **settings,
            }
        )
    )
    port = await app.start(0)
    assert app.server is not None
    health = app.server.health

    async def serving() -> bool:
        return health.serving  # the first check also creates the indexes

    try:
        await eventually(serving, within_s=10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Registry(registry_pb2_grpc.RegistryServiceStub(channel), app)
    finally:
        await app.stop()


@pytest.fixture(name="registry")
async def registry_fixture(mongo_url: str, database_name: str) -> AsyncIterator[Registry]:
    """The registry served for one test (import it with `# noqa: F401`, as broker_support's)."""
    async with serve_registry(mongo_url, database_name) as served:
        yield served


async def refused(call: object, code: grpc.StatusCode) -> list[tuple[str, str]]:
    """Await the call, expect it to fail with code, and return its field violations."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return field_violations(caught.value)


async def lapse(registry: Registry, center_id: str) -> None:
    """Move an active licence's expiry into the past, as a year's wait would."""
    await registry.app.store.centers.update_one(
        {"_id": center_id},
        {"$set": {"licence.expires_at": datetime.now(UTC) - timedelta(days=1)}},
    )
