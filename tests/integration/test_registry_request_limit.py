"""The registry takes no request over REGISTRY_REQUEST_BYTES (2 MiB), about twice its largest
valid one: a catalogue service as large as the rules allow is added and updated, and a larger
request is refused INVALID_ARGUMENT on field `request`, naming its size, and audited. Through
the real servicer against the real MongoDB-wire server."""

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from pymongo import AsyncMongoClient

from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.rpc.server import REGISTRY_REQUEST_BYTES
from sanad.security.audit import COLLECTION
from sanad.v1 import registry_pb2 as pb
from services.registry.validation import MAX_LIST_LENGTH, MAX_TEXT_LENGTH
from tests.integration.conftest import eventually
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
WIDE = "\U0001d538"  # four bytes in UTF-8: the widest a character encodes


def largest_service(code: str, first: int) -> pb.CatalogService:
    """A catalogue service at every bound: 500 distinct required documents of 500 four-byte
    characters each (the characters from `first` on), names of 500."""
    documents = [chr(first + n) * MAX_TEXT_LENGTH for n in range(MAX_LIST_LENGTH)]
    return pb.CatalogService(
        code=code,
        agency_code="ROP",
        name_ar=WIDE * MAX_TEXT_LENGTH,
        name_en=WIDE * MAX_TEXT_LENGTH,
        fee_baisa=10_000_000,
        sla_hours=2**31 - 1,
        required_documents=documents,
    )


async def test_the_largest_catalogue_service_the_rules_allow_is_added_and_updated(
    registry: Registry,
) -> None:
    code = "ROP-" + "L" * (MAX_CODE_LENGTH - 4)
    added = pb.AddCatalogServiceRequest(service=largest_service(code, 0x20000))
    assert added.ByteSize() > 1_000_000  # every bound reached
    reply = await registry.stub.AddCatalogService(added, timeout=30)
    assert reply.service.required_documents == added.service.required_documents

    changed = largest_service(code, 0x21000)
    mask = FieldMask(paths=["name_ar", "name_en", "fee_baisa", "sla_hours", "required_documents"])
    update = pb.UpdateCatalogServiceRequest(service=changed, update_mask=mask)
    updated = await registry.stub.UpdateCatalogService(update, timeout=30)
    assert (updated.service.version, updated.service.required_documents[0]) == (
        2,
        changed.required_documents[0],
    )


async def test_a_request_over_the_registrys_limit_is_refused_by_its_size_and_audited(
    registry: Registry, mongo_url: str, database_name: str
) -> None:
    service = largest_service("ROP-OVERSIZED", 0x20000)
    service.name_en = "n" * REGISTRY_REQUEST_BYTES
    request = pb.AddCatalogServiceRequest(service=service)
    call = registry.stub.AddCatalogService(
        request, metadata=(("x-request-id", "req-oversized"),), timeout=30
    )
    [(field, description)] = await refused(call, grpc.StatusCode.INVALID_ARGUMENT)
    assert field == "request"
    assert description == (
        f"a request of {request.ByteSize():,} bytes; "
        f"this service takes at most {REGISTRY_REQUEST_BYTES:,}"
    )

    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        trail = client[database_name][COLLECTION]

        async def audited() -> bool:
            found = await trail.find_one({"request_id": "req-oversized"})
            return found is not None and found["outcome"] == "INVALID_ARGUMENT"

        await eventually(audited, within_s=10)
    finally:
        await client.close()
