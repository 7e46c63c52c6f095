"""A listing page stops before its reply would pass the server's gRPC message limit and hands
out a next-page token, so paging always proceeds however large the centres or services are.
The served registry here has a 64 KiB limit, so a few dozen legal centres or services fill it.
Through the real servicer against the real MongoDB-wire server."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import Registry, serve_registry

pytestmark = pytest.mark.integration
LIMIT = 64 * 1024


@pytest.fixture(name="small")
async def small_fixture(mongo_url: str, database_name: str) -> AsyncIterator[Registry]:
    """The registry served with a 64 KiB message limit."""
    async with serve_registry(mongo_url, database_name, grpc_max_message_bytes=LIMIT) as served:
        yield served


async def test_centres_too_large_for_one_reply_are_listed_over_pages_that_fit(
    small: Registry,
) -> None:
    codes = [f"MOL-{n:03d}-" + "S" * 52 for n in range(100)]  # 100 codes of 60 characters
    for code in codes:
        await small.add_service(code, agency="MOL")
    registered = await asyncio.gather(
        *(small.register(offered_service_codes=codes) for _ in range(20))
    )
    assert sum(c.ByteSize() for c in registered) > LIMIT

    listed: list[pb.Center] = []
    token = ""
    while True:
        reply = await small.stub.ListCenters(
            pb.ListCentersRequest(service_code=codes[0], page_size=500, page_token=token)
        )
        assert reply.centers, "every page makes progress"
        assert reply.ByteSize() <= LIMIT
        listed += reply.centers
        token = reply.next_page_token
        if not token:
            break
    assert [c.id for c in listed] == sorted(c.id for c in registered)
    assert len(listed) > len(registered) // 2 > 1  # more than one page, far fewer than 20


async def test_catalogue_services_too_large_for_one_reply_are_listed_over_pages_that_fit(
    small: Registry,
) -> None:
    documents = [f"document {n:02d} " + "د" * 90 for n in range(50)]  # about 10 KB a service
    for n in range(12):
        await small.stub.AddCatalogService(
            pb.AddCatalogServiceRequest(
                service=pb.CatalogService(
                    code=f"ROP-{n:02d}",
                    agency_code="ROP",
                    name_ar="خدمة",
                    name_en="Service",
                    fee_baisa=1000,
                    sla_hours=24,
                    required_documents=documents,
                )
            )
        )
    listed: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await small.stub.ListCatalogServices(
            pb.ListCatalogServicesRequest(page_size=1000, page_token=token)
        )
        assert reply.services
        assert reply.ByteSize() <= LIMIT
        listed += [s.code for s in reply.services]
        pages += 1
        token = reply.next_page_token
        if not token:
            break
    assert listed == [f"ROP-{n:02d}" for n in range(12)]
    assert pages > 1
