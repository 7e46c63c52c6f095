"""A registry restart does not stop intake or metrics: each keeps using its copy of the registry
for SANAD_REGISTRY_OUTAGE_GRACE_S after the watch stream breaks, and refuses work that needs
it (UNAVAILABLE, health NOT_SERVING) once the registry has been out of reach for longer."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.amqp.topology import delete_topology
from sanad.devstack.mongo_server import free_port
from sanad.v1 import (
    intake_pb2_grpc,
    metrics_pb2,
    metrics_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.intake.app import IntakeApp
from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.metrics.app import build_app as build_metrics
from services.metrics.settings import MetricsSettings
from services.registry.app import RegistryApp
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.integration.conftest import eventually, in_process_settings, submit_request
from tests.integration.metrics_support import build_rollup_indexes
from tests.integration.registry_support import centre, visa_renewal

SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class Restartable:
    """A registry on a port of its own, which the test stops and starts again, and an intake
    and a metrics service following it."""

    common: dict[str, Any]
    registry_port: int
    registry: RegistryApp | None
    intake: IntakeApp
    channels: dict[str, grpc.aio.Channel]

    async def stop_registry(self) -> None:
        assert self.registry is not None
        await self.registry.stop()
        self.registry = None

    async def start_registry(self) -> None:
        self.registry = build_registry(RegistrySettings(**self.common))
        await self.registry.start(self.registry_port)

    async def serving(self, name: str) -> bool:
        health = health_pb2_grpc.HealthStub(self.channels[name])
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return reply.status == SERVING

    async def submit(self, center_id: str, service: str) -> str:
        stub = intake_pb2_grpc.IntakeServiceStub(self.channels["intake"])
        reply = await stub.SubmitTransaction(
            submit_request(center_id, service, f"restart-{time.time_ns()}"), timeout=10
        )
        return str(reply.transaction_id)

    async def report(self) -> metrics_pb2.GetGovernorateReportResponse:
        stub = metrics_pb2_grpc.MetricsServiceStub(self.channels["metrics"])
        return await stub.GetGovernorateReport(
            metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=2026), timeout=15
        )


@asynccontextmanager
async def restartable(
    mongo_url: str, database: str, amqp_url: str, amqp_prefix: str, grace_s: float
) -> AsyncIterator[Restartable]:
    common = in_process_settings(mongo_url, database, amqp_url=amqp_url, amqp_prefix=amqp_prefix)
    registry_port = free_port()
    followers = {
        "registry_target": f"127.0.0.1:{registry_port}",
        "registry_outage_grace_s": grace_s,
    }
    intake = build_intake(IntakeSettings(**common, **followers))
    metrics = build_metrics(MetricsSettings(**common, **followers))
    up = Restartable(common, registry_port, None, intake, {})
    await build_rollup_indexes(mongo_url, database)  # the ingest worker's, which metrics awaits
    await up.start_registry()
    try:
        ports = {"intake": await intake.start(0), "metrics": await metrics.start(0)}
        up.channels = {
            name: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()
        }
        await eventually(lambda: up.serving("intake"), within_s=15)
        await eventually(lambda: up.serving("metrics"), within_s=15)
        yield up
    finally:
        for channel in up.channels.values():
            await channel.close()
        await metrics.stop()
        await intake.stop()
        if up.registry is not None:
            await up.registry.stop()
        await delete_topology(amqp_url, amqp_prefix)


async def open_centre(up: Restartable) -> tuple[str, str]:
    """An active centre offering a new service, once intake's copy has it."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{up.registry_port}")
    async with channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        code = f"ROP-VISA-{time.time_ns()}"
        await registry.AddCatalogService(
            registry_pb2.AddCatalogServiceRequest(service=visa_renewal(code, 5000))
        )
        reply = await registry.RegisterCenter(
            registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}", code))
        )
        for action in (registry_pb2.LICENCE_ACTION_APPROVE, registry_pb2.LICENCE_ACTION_ACTIVATE):
            await registry.TransitionLicence(
                registry_pb2.TransitionLicenceRequest(
                    center_id=reply.center.id, action=action, reason="ok"
                )
            )
    center_id = reply.center.id

    async def seen() -> bool:
        view = up.intake.snapshot.centers.get(center_id)
        return up.intake.snapshot.ready and view is not None and view.licence_status == "ACTIVE"

    await eventually(seen, within_s=10)
    return center_id, code


async def test_intake_and_metrics_serve_through_a_registry_restart(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> None:
    async with restartable(mongo_url, database_name, amqp_url, amqp_prefix, grace_s=60) as up:
        center_id, service = await open_centre(up)
        before = await up.report()
        await up.stop_registry()
        await eventually(lambda: _async(not up.intake.snapshot.watches[0].synced), within_s=10)
        # Past two health checks (one a second) with the stream broken.
        await asyncio.sleep(2.5)

        # The registry is down: both answer from their copies, and stay SERVING.
        assert await up.submit(center_id, service)
        assert await up.report() == before
        assert await up.serving("intake")
        assert await up.serving("metrics")

        await up.start_registry()
        await eventually(lambda: _async(up.intake.snapshot.watches[0].synced), within_s=15)
        assert await up.submit(center_id, service)


async def test_past_the_grace_work_that_needs_the_registry_is_unavailable_until_it_is_back(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> None:
    async with restartable(mongo_url, database_name, amqp_url, amqp_prefix, grace_s=1) as up:
        center_id, service = await open_centre(up)
        await up.stop_registry()
        await eventually(lambda: _not(up.serving("intake")), within_s=15)
        await eventually(lambda: _not(up.serving("metrics")), within_s=15)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await up.submit(center_id, service)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "copy of the registry is not current" in str(refused.value.details())
        with pytest.raises(grpc.aio.AioRpcError) as unreported:
            await up.report()
        assert unreported.value.code() is grpc.StatusCode.UNAVAILABLE

        await up.start_registry()
        await eventually(lambda: up.serving("intake"), within_s=15)
        await eventually(lambda: up.serving("metrics"), within_s=15)
        assert await up.submit(center_id, service)
        assert (await up.report()).governorate_code == "DA"


async def _async(value: bool) -> bool:
    return value


async def _not(check: Any) -> bool:
    return not await check
