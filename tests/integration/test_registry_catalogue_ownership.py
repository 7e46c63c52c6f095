"""A ministry changes only its own agency's catalogue services, whatever the request names."""

import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.devstack import certs
from sanad.rpc.status import field_violations
from sanad.security.credentials import issue_token
from sanad.security.identity import Identity, Role
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.validation import SERVICE_CODE_RULE
from tests.integration.registry_support import visa_renewal

pytestmark = pytest.mark.integration

IDENTITIES = {
    **certs.EXAMPLES,
    "ministry-moh": Identity("moh-systems", Role.MINISTRY, agency_code="MOH"),
}


@dataclass
class Secured:
    registry: registry_pb2_grpc.RegistryServiceStub
    tokens: dict[str, str]

    def as_(self, name: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[name]}"),)

    async def update_fee(self, who: str, code: str, agency: str, fee: int) -> pb.CatalogService:
        reply = await self.registry.UpdateCatalogService(
            pb.UpdateCatalogServiceRequest(
                service=pb.CatalogService(code=code, agency_code=agency, fee_baisa=fee),
                update_mask=FieldMask(paths=["fee_baisa"]),
            ),
            metadata=self.as_(who),
            timeout=10,
        )
        return reply.service

    async def fee_of(self, code: str) -> int:
        reply = await self.registry.GetCatalogService(
            pb.GetCatalogServiceRequest(code=code), metadata=self.as_("admin"), timeout=10
        )
        return reply.service.fee_baisa


@pytest.fixture
def secured(required_auth_registry: grpc.aio.Channel, pki: Path) -> Secured:
    key = (pki / "jwt-signing.key").read_bytes()
    tokens = {
        name: issue_token(key, identity, "sanad-mesh", "sanad-mesh", 600)
        for name, identity in IDENTITIES.items()
    }
    return Secured(registry_pb2_grpc.RegistryServiceStub(required_auth_registry), tokens)


async def rop_service(secured: Secured) -> str:
    code = f"ROP-VISA-{time.time_ns()}"
    await secured.registry.AddCatalogService(
        pb.AddCatalogServiceRequest(service=visa_renewal(code)),
        metadata=secured.as_("ministry-rop"),
        timeout=10,
    )
    return code


async def test_a_ministry_may_not_update_another_agencys_service_by_naming_its_own(
    secured: Secured,
) -> None:
    code = await rop_service(secured)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await secured.update_fee("ministry-moh", code, "MOH", 1)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await secured.fee_of(code) == 5000


async def test_the_owning_ministry_the_licensing_ministry_and_admins_may_update(
    secured: Secured,
) -> None:
    code = await rop_service(secured)
    assert (await secured.update_fee("ministry-rop", code, "ROP", 4000)).fee_baisa == 4000
    assert (await secured.update_fee("ministry-mociip", code, "MOCIIP", 3000)).fee_baisa == 3000
    assert (await secured.update_fee("admin", code, "", 2000)).fee_baisa == 2000
    assert await secured.fee_of(code) == 2000


async def test_an_update_need_not_name_the_agency_the_service_belongs_to(
    secured: Secured,
) -> None:
    """As sanadctl catalogue update sends it: the code and the masked fields only."""
    code = await rop_service(secured)
    assert (await secured.update_fee("ministry-rop", code, "", 4500)).fee_baisa == 4500
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await secured.update_fee("ministry-moh", code, "", 1)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await secured.fee_of(code) == 4500


async def test_a_ministry_publishes_only_codes_that_begin_with_its_services_agency(
    secured: Secured,
) -> None:
    """ROP cannot publish a code that reads as the Ministry of Labour's, nor one that only looks
    like a code (a Cyrillic letter); the licensing ministry names any agency's, by that agency;
    an admin any valid code that does not read as another agency's."""
    stamp = time.time_ns()

    async def add(who: str, code: str, agency: str = "ROP") -> tuple[str, list[tuple[str, str]]]:
        service = visa_renewal(code)
        service.agency_code = agency
        try:
            await secured.registry.AddCatalogService(
                pb.AddCatalogServiceRequest(service=service), metadata=secured.as_(who), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name, field_violations(error)
        return "OK", []

    invalid = "INVALID_ARGUMENT"
    assert await add("ministry-rop", f"MOL-PERMIT-{stamp}") == (
        invalid,
        [("service.code", "must begin with ROP- (the agency of the service)")],
    )
    assert await add("ministry-rop", f"ROP-VISA-{stamp}\u0415") == (
        invalid,
        [("service.code", SERVICE_CODE_RULE)],
    )
    assert await add("ministry-rop", f"ROP-VISA-{stamp}") == ("OK", [])
    assert await add("ministry-mociip", f"MOL-PERMIT-{stamp}", agency="MOL") == ("OK", [])
    assert await add("ministry-mociip", f"ROP-PERMIT-{stamp}", agency="MOL") == (
        invalid,
        [("service.code", "must begin with MOL- (the agency of the service)")],
    )
    assert await add("admin", f"S-{stamp}") == ("OK", [])
    # Nor does an admin's code read as another agency's than its service's.
    assert await add("admin", f"ROP-PERMIT-{stamp}", agency="MOL") == (
        invalid,
        [("service.code", "reads as agency ROP's; the service is MOL's")],
    )
    assert await add("admin", f"MOL-PERMIT-{stamp}-2", agency="MOL") == ("OK", [])
