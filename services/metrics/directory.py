"""Centre facts read from the registry over gRPC ListCenters (filtered by governorate, paged)."""

from datetime import UTC
from typing import Protocol

import grpc

from sanad.errors import Unavailable
from sanad.rpc.identity import IDENTITY_KEY
from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.metrics.domain import CenterFacts, LicenceChange

PAGE_SIZE = 500


class CenterDirectory(Protocol):
    """Where the metrics service learns which centres exist and their facts."""

    async def centers(self, governorate_code: str) -> list[CenterFacts]: ...


def facts_of(center: registry_pb2.Center) -> CenterFacts:
    """The registry's centre message as the facts the report needs."""
    history = [
        LicenceChange(
            time=event.time.ToDatetime(tzinfo=UTC),
            to_status=registry_pb2.LicenceStatus.Name(event.to_status).removeprefix(
                "LICENCE_STATUS_"
            ),
        )
        for event in center.licence.history
    ]
    return CenterFacts(
        center_id=center.id,
        name_ar=center.name_ar,
        name_en=center.name_en,
        wilayat_code=center.wilayat_code,
        omani_staff=center.omani_staff,
        licence_history=tuple(history),
    )


class RegistryDirectory:
    """Reads every centre of a governorate, page by page, with a deadline on each call."""

    def __init__(self, channel: grpc.aio.Channel, identity: str, timeout_s: float) -> None:
        self.stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self.metadata = ((IDENTITY_KEY, identity),)
        self.timeout_s = timeout_s

    async def centers(self, governorate_code: str) -> list[CenterFacts]:
        found: list[CenterFacts] = []
        token = ""
        while True:
            request = registry_pb2.ListCentersRequest(
                governorate_code=governorate_code, page_size=PAGE_SIZE, page_token=token
            )
            try:
                reply = await self.stub.ListCenters(
                    request, timeout=self.timeout_s, metadata=self.metadata
                )
            except grpc.aio.AioRpcError as error:
                # The caller sees UNAVAILABLE and may retry; the registry's detail stays in logs.
                raise Unavailable(f"registry cannot list centres: {error.code().name}") from error
            found.extend(facts_of(center) for center in reply.centers)
            token = reply.next_page_token
            if not token:
                return found
