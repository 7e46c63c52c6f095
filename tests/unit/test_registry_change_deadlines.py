"""A registry change that keeps losing races stops retrying before the caller's deadline: the
caller gets ABORTED (retries exhausted, as registry.proto says), not DEADLINE_EXCEEDED while the
server goes on trying for a caller that gave up."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import grpc
import pytest

from sanad.errors import Aborted
from sanad.rpc.interceptors import ServerInterceptor
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.catalog import CatalogOperations
from services.registry.centers import CenterOperations
from services.registry.domain import CatalogService, Center, Licence
from services.registry.operations import ChangeFeed, SessionCheck, Store
from services.registry.races import CHANGE_TRIES
from services.registry.reference import ReferenceData
from services.registry.servicer import RegistryServicer

CENTER = Center("C1", "ع", "Centre", "Est", "DA", "DA-NZW", 3, 5, Licence("DA-1"), revision=1)
SERVICE = CatalogService("S1", "ROP", "ع", "Service", 1000, 24, revision=1)
SAVE_S = 0.05  # a database slowed down by the crowd of changes racing this one
CALLER_WAITS_S = 1.0


class AlwaysRaced:
    """A store whose every save loses to another change, after SAVE_S."""

    def __init__(self) -> None:
        self.saves = 0

    async def get_center(self, center_id: str) -> Center | None:
        return CENTER

    async def get_service(self, code: str) -> CatalogService | None:
        return SERVICE

    async def _lose(self) -> None:
        self.saves += 1
        await asyncio.sleep(SAVE_S)
        raise Aborted("changed meanwhile")

    async def save_center(
        self, center: Center, *, new: bool, check: SessionCheck | None = None
    ) -> Center:
        await self._lose()
        raise AssertionError("unreachable")

    async def save_service(self, service: CatalogService, *, new: bool) -> CatalogService:
        await self._lose()
        raise AssertionError("unreachable")


@pytest.fixture
def store() -> AlwaysRaced:
    return AlwaysRaced()


@pytest.fixture
async def stub(store: AlwaysRaced) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    reference, feed = ReferenceData.load(), ChangeFeed()
    servicer = RegistryServicer(
        CenterOperations(cast(Store, store), reference, feed),
        CatalogOperations(cast(Store, store), reference, feed, "MOCIIP"),
    )
    server = grpc.aio.server(interceptors=[ServerInterceptor()])
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)
    await server.stop(0)


Call = Callable[[registry_pb2_grpc.RegistryServiceStub], Awaitable[object]]

CHANGES: dict[str, Call] = {
    "retire a catalogue service": lambda stub: stub.RetireCatalogService(
        pb.RetireCatalogServiceRequest(code="S1"), timeout=CALLER_WAITS_S
    ),
    "set a centre's services": lambda stub: stub.SetCenterServices(
        # A list the centre does not hold: one it holds already changes nothing, races nothing.
        pb.SetCenterServicesRequest(center_id="C1", offered_service_codes=["S1"]),
        timeout=CALLER_WAITS_S,
    ),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
async def test_a_change_that_keeps_losing_races_is_aborted_before_the_callers_deadline(
    stub: registry_pb2_grpc.RegistryServiceStub, store: AlwaysRaced, change: Call
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await change(stub)
    assert refused.value.code() is grpc.StatusCode.ABORTED
    assert 1 < store.saves < CHANGE_TRIES
