"""A local copy of the registry, kept fresh by its watch streams; no call per submission.

Each stream resumes from the last revision it applied, so a reconnect misses
nothing and applies nothing twice. The snapshot is ready once both streams
have finished their replay.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from sanad.rpc.timestamps import from_timestamp
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.intake.domain import CenterView, ServiceView

log = logging.getLogger("sanad.intake.snapshot")


def center_view(center: pb.Center) -> CenterView:
    return CenterView(
        id=center.id,
        governorate_code=center.governorate_code,
        wilayat_code=center.wilayat_code,
        # The stored status: expiry is judged at submission time from expires_at.
        licence_status=pb.LicenceStatus.Name(center.licence.status).removeprefix("LICENCE_STATUS_"),
        licence_expires_at=from_timestamp(center.licence.expires_at),
        offered=frozenset(center.offered_service_codes),
        blocked=frozenset(center.blocked_service_codes),
    )


def service_view(service: pb.CatalogService) -> ServiceView:
    return ServiceView(
        code=service.code,
        agency_code=service.agency_code,
        fee_baisa=service.fee_baisa,
        sla_hours=service.sla_hours,
        version=service.version,
        active=service.status == pb.CATALOG_SERVICE_STATUS_ACTIVE,
    )


class RegistrySnapshot:
    """Centres and catalogue services by key, as of the last applied revisions."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self.centers: dict[str, CenterView] = {}
        self.services: dict[str, ServiceView] = {}
        self.center_revision = 0
        self.catalog_revision = 0
        self._synced = {"centers": False, "catalog": False}
        self.changed = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Both streams have replayed the registry's history."""
        return all(self._synced.values())

    async def run(self) -> None:
        """Follow both streams forever, reconnecting with backoff."""
        await asyncio.gather(
            self._follow("centers", self._center_stream),
            self._follow("catalog", self._catalog_stream),
        )

    async def _follow(self, name: str, open_stream: Callable[[], AsyncIterator[None]]) -> None:
        delay = 0.1
        while True:
            try:
                async for _ in open_stream():
                    delay = 0.1
            except grpc.aio.AioRpcError as error:
                log.warning("registry %s stream broke (%s); reconnecting", name, error.code().name)
            self._synced[name] = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _center_stream(self) -> AsyncIterator[None]:
        call = self.stub.WatchCenters(pb.WatchCentersRequest(since_revision=self.center_revision))
        async for message in call:
            if message.HasField("synced"):
                self._synced["centers"] = True
            else:
                self.centers[message.center.id] = center_view(message.center)
                self.center_revision = message.center.revision
            self._notify()
            yield None

    async def _catalog_stream(self) -> AsyncIterator[None]:
        call = self.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=self.catalog_revision))
        async for message in call:
            if message.HasField("synced"):
                self._synced["catalog"] = True
            else:
                self.services[message.service.code] = service_view(message.service)
                self.catalog_revision = message.service.revision
            self._notify()
            yield None

    def _notify(self) -> None:
        self.changed.set()
        self.changed.clear()
