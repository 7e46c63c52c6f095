"""Intake's and the batch worker's copy of the registry's centres and catalogue, kept fresh by its
watch streams.

No call per submission: the snapshot is ready once both streams have replayed the registry's
history, and stays ready for a grace while the registry is restarted (sanad.registry_watch).
Each centre's business series are created at zero for the agencies of the services it offers
as soon as both are known, so a submission's first count is seen (prepare_submitted).

The batch worker also keeps what each centre's place and each service's terms were since the
registry first recorded them (sanad.registry_past), to file and judge migrated history as of its
own day.
"""

import asyncio

import grpc

from sanad.domain.submissions import CenterView, ServiceView, place_of, terms_of
from sanad.registry_past import Dated, followed_by
from sanad.registry_watch import Watch, opener
from sanad.rpc.timestamps import from_timestamp
from sanad.telemetry.metrics import prepare_submitted
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc


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
    """Centres and catalogue services by key, as of the last applied revisions; with
    keep_past, also each centre's places and each service's terms since first recorded."""

    def __init__(
        self, channel: grpc.aio.Channel, outage_grace_s: float, *, keep_past: bool = False
    ) -> None:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self.centers: dict[str, CenterView] = {}
        self.services: dict[str, ServiceView] = {}
        self.keep_past = keep_past
        # Each centre's views at every change of its place, each service's at every change of
        # its terms, oldest first (with keep_past).
        self.places: dict[str, tuple[Dated[CenterView], ...]] = {}
        self.terms: dict[str, tuple[Dated[ServiceView], ...]] = {}
        self.watches = (
            Watch(
                "centers",
                opener(stub.WatchCenters, pb.WatchCentersRequest),
                self._apply_center,
                self._forget_centers,
                outage_grace_s,
            ),
            Watch(
                "catalog",
                opener(stub.WatchCatalog, pb.WatchCatalogRequest),
                self._apply_service,
                self._forget_services,
                outage_grace_s,
            ),
        )

    @property
    def ready(self) -> bool:
        """Both streams have replayed the registry's history, and are live or broke less than
        the outage grace ago."""
        return all(watch.usable for watch in self.watches)

    async def run(self) -> None:
        """Follow both streams forever, reconnecting with backoff."""
        await asyncio.gather(*(watch.run() for watch in self.watches))

    def _forget_centers(self) -> None:
        self.centers.clear()
        self.places.clear()  # a batch being judged holds its own copy

    def _forget_services(self) -> None:
        self.services.clear()
        self.terms.clear()

    def _apply_center(self, center: pb.Center) -> None:
        view = self.centers[center.id] = center_view(center)
        if self.keep_past:
            since, history = from_timestamp(center.update_time), self.places.get(center.id, ())
            self.places[center.id] = followed_by(history, since, view, key=place_of)
        for code in view.offered:
            if (service := self.services.get(code)) is not None:
                prepare_submitted(view.governorate_code, view.wilayat_code, service.agency_code)

    def _apply_service(self, service: pb.CatalogService) -> None:
        before = self.services.get(service.code)
        view = self.services[service.code] = service_view(service)
        if self.keep_past:
            since, history = from_timestamp(service.update_time), self.terms.get(service.code, ())
            self.terms[service.code] = followed_by(history, since, view, key=terms_of)
        if before is not None and before.agency_code == view.agency_code:
            return  # its centres' series were prepared with this agency already
        for center in self.centers.values():
            if view.code in center.offered:
                prepare_submitted(center.governorate_code, center.wilayat_code, view.agency_code)
