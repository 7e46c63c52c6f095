"""Every id and code a registry call names is at most 128 characters, as registry.proto
promises: a longer one is INVALID_ARGUMENT naming its field, never NOT_FOUND echoing it or a
reply too large for gRPC's metadata. Through the real servicer against the real MongoDB-wire
server."""

from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.v1 import registry_pb2 as pb
from sanad.v1.registry_pb2_grpc import RegistryServiceStub
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode
Call = Callable[[RegistryServiceStub, str], Awaitable[object]]

NAMED_BY_ID: dict[str, Call] = {
    "id": lambda s, v: s.GetCenter(pb.GetCenterRequest(id=v)),
    "center.id": lambda s, v: s.UpdateCenter(
        pb.UpdateCenterRequest(
            center=pb.Center(id=v, name_en="x"), update_mask=FieldMask(paths=["name_en"])
        )
    ),
    "center_id": lambda s, v: s.TransitionLicence(
        pb.TransitionLicenceRequest(center_id=v, action=pb.LICENCE_ACTION_APPROVE, reason="r")
    ),
    "code": lambda s, v: s.GetCatalogService(pb.GetCatalogServiceRequest(code=v)),
    "service.code": lambda s, v: s.UpdateCatalogService(
        pb.UpdateCatalogServiceRequest(
            service=pb.CatalogService(code=v, sla_hours=4),
            update_mask=FieldMask(paths=["sla_hours"]),
        )
    ),
}
ALSO_NAMED: list[tuple[str, Call]] = [
    ("center_id", lambda s, v: s.SetCenterServices(pb.SetCenterServicesRequest(center_id=v))),
    ("code", lambda s, v: s.RetireCatalogService(pb.RetireCatalogServiceRequest(code=v))),
    (
        "governorate_code",
        lambda s, v: s.ListCenters(pb.ListCentersRequest(governorate_code=v)),
    ),
    ("wilayat_code", lambda s, v: s.ListCenters(pb.ListCentersRequest(wilayat_code=v))),
    ("service_code", lambda s, v: s.ListCenters(pb.ListCentersRequest(service_code=v))),
    (
        "agency_code",
        lambda s, v: s.ListCatalogServices(pb.ListCatalogServicesRequest(agency_code=v)),
    ),
]
EVERY_CALL = [*NAMED_BY_ID.items(), *ALSO_NAMED]
RPCS = ["Get", "Update", "Transition", "GetService", "UpdateService", "SetServices", "Retire"]
RPCS += ["ListCenters"] * 3 + ["ListServices"]


@pytest.mark.parametrize(
    ("field", "call"),
    EVERY_CALL,
    ids=[f"{rpc}-{f}" for rpc, (f, _) in zip(RPCS, EVERY_CALL, strict=True)],
)
async def test_an_overlong_id_or_code_is_refused_by_field_without_echoing_it(
    registry: Registry, field: str, call: Call
) -> None:
    for length in (129, 9000):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(registry.stub, "x" * length)
        assert caught.value.code() == Code.INVALID_ARGUMENT, caught.value.details()
        assert len(caught.value.details() or "") < 200
    bad = await refused(call(registry.stub, "x" * 129), Code.INVALID_ARGUMENT)
    assert bad == [(field, "must be at most 128 characters")]


@pytest.mark.parametrize("field", list(NAMED_BY_ID))
async def test_an_id_or_code_at_the_bound_is_looked_up(registry: Registry, field: str) -> None:
    await refused(NAMED_BY_ID[field](registry.stub, "x" * 128), Code.NOT_FOUND)
