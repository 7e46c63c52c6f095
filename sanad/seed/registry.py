"""Registers the seed's catalogue services and centres over gRPC and activates their licences.

Re-running is safe: an existing service or centre (same code / licence number) is reused, and a
licence the seed did not leave where it is (suspended, expired or cancelled since) is left so: a
regulator's decision is not the seed's to undo.
"""

import logging
from dataclasses import dataclass
from typing import Any

import grpc

from sanad.rpc.identity import IDENTITY_KEY
from sanad.security.authenticate import AUTHORIZATION_KEY
from sanad.seed.catalogue import SERVICES
from sanad.seed.centres import SeedCentre
from sanad.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger("sanad.seed")
ACTIVE = registry_pb2.LICENCE_STATUS_ACTIVE
# A new licence's way to ACTIVE. Reinstating a suspended one or renewing an expired one would
# undo a regulator's decision, or pay for a year nobody asked for, under the seed's name.
NEXT_ACTION = {
    registry_pb2.LICENCE_STATUS_APPLIED: registry_pb2.LICENCE_ACTION_APPROVE,
    registry_pb2.LICENCE_STATUS_INITIALLY_APPROVED: registry_pb2.LICENCE_ACTION_ACTIVATE,
}


@dataclass
class SeedRegistry:
    """The registry calls the seed makes, each with identity and a deadline."""

    stub: Any
    identity: str = "sanad-seed"
    timeout_s: float = 10.0
    token: str = ""

    async def _call(self, method: Any, request: Any) -> Any:
        metadata: tuple[tuple[str, str], ...] = ((IDENTITY_KEY, self.identity),)
        if self.token:
            metadata += ((AUTHORIZATION_KEY, f"Bearer {self.token}"),)
        return await method(request, timeout=self.timeout_s, metadata=metadata)

    async def ensure_services(self) -> dict[str, int]:
        """Add the catalogue services that are missing; returns each code's seed fee.

        History keeps the seed's fee even where the catalogue's has changed since: a batch id
        must hold the same items every run, or the batch worker refuses it as used before.
        """
        fees: dict[str, int] = {}
        for s in SERVICES:
            service = registry_pb2.CatalogService(
                code=s.code,
                agency_code=s.agency_code,
                name_ar=s.name_ar,
                name_en=s.name_en,
                fee_baisa=s.fee_baisa,
                sla_hours=s.sla_hours,
            )
            try:
                await self._call(
                    self.stub.AddCatalogService,
                    registry_pb2.AddCatalogServiceRequest(service=service),
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
            fees[s.code] = s.fee_baisa
        return fees

    async def existing(self, governorate: str) -> dict[str, registry_pb2.Center]:
        """The governorate's centres by licence number."""
        found: dict[str, registry_pb2.Center] = {}
        token = ""
        while True:
            request = registry_pb2.ListCentersRequest(
                governorate_code=governorate, page_size=500, page_token=token
            )
            reply = await self._call(self.stub.ListCenters, request)
            found.update({c.licence.number: c for c in reply.centers})
            token = reply.next_page_token
            if not token:
                return found

    async def ensure_centre(
        self, centre: SeedCentre, governorate: str, known: dict[str, registry_pb2.Center]
    ) -> registry_pb2.Center:
        """Register the centre unless it exists, then take a new licence to ACTIVE; returns the
        centre as the registry has it then."""
        current = known.get(centre.licence_number)
        if current is None:
            reply = await self._call(
                self.stub.RegisterCenter,
                registry_pb2.RegisterCenterRequest(center=_center_message(centre, governorate)),
            )
            current = reply.center
        for _ in range(3):
            if current.licence.status == ACTIVE or current.licence.status not in NEXT_ACTION:
                break
            reply = await self._call(
                self.stub.TransitionLicence,
                registry_pb2.TransitionLicenceRequest(
                    center_id=current.id,
                    action=NEXT_ACTION[current.licence.status],
                    reason="seed: migrated centre",
                ),
            )
            current = reply.center
        return current


def _center_message(centre: SeedCentre, governorate: str) -> registry_pb2.Center:
    return registry_pb2.Center(
        name_ar=centre.name_ar,
        name_en=centre.name_en,
        owner_establishment=centre.owner,
        governorate_code=governorate,
        wilayat_code=centre.wilayat_code,
        omani_staff=centre.omani_staff,
        total_staff=centre.total_staff,
        offered_service_codes=list(centre.service_codes),
        contact=registry_pb2.Contact(phone=f"+96825{centre.index:06d}"),
        licence=registry_pb2.Licence(number=centre.licence_number),
    )


def registry_stub(channel: grpc.aio.Channel) -> Any:
    """A RegistryService stub on an open channel."""
    return registry_pb2_grpc.RegistryServiceStub(channel)
