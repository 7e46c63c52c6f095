"""No centre is registered before the unique licence-number index exists (a registry that
started while MongoDB was down builds it late): until then RegisterCenter is UNAVAILABLE."""

import time

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.devstack import mongo_server
from sanad.errors import AlreadyExists, Unavailable
from sanad.v1 import registry_pb2 as pb
from sanad.v1 import registry_pb2_grpc
from services.registry.app import build_app
from services.registry.domain import Center, Licence
from services.registry.settings import RegistrySettings
from services.registry.store import RegistryStore
from tests.integration.registry_support import centre

pytestmark = pytest.mark.integration


def new_center(center_id: str, number: str) -> Center:
    return Center(
        id=center_id,
        name_ar="مركز الوسام",
        name_en="Al Wisam Centre",
        owner_establishment="مؤسسة الوسام",
        governorate_code="DA",
        wilayat_code="DA-BAH",
        omani_staff=2,
        total_staff=3,
        licence=Licence(number),
    )


async def test_a_store_refuses_new_centres_until_its_indexes_are_built(
    mongo_url: str, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        store = RegistryStore(client, client[database_name])  # type: ignore[arg-type]
        with pytest.raises(Unavailable, match="preparing its database"):
            await store.save_center(new_center("C-1", "LIC-1"), new=True)
        assert await store.centers.count_documents({}) == 0

        await store.ensure_indexes()
        await store.save_center(new_center("C-1", "LIC-1"), new=True)
        with pytest.raises(AlreadyExists):
            await store.save_center(new_center("C-2", "LIC-1"), new=True)
    finally:
        await client.close()


async def test_register_center_is_unavailable_while_the_indexes_wait_for_mongodb(
    database_name: str,
) -> None:
    nobody_listens = mongo_server.url(mongo_server.free_port())  # MongoDB not up yet
    app = build_app(
        RegistrySettings(
            mongo_url=nobody_listens,
            mongo_database=database_name,
            mongo_timeout_ms=1000,
            grpc_host="127.0.0.1",
            shutdown_grace_s=0.5,
        )
    )
    port = await app.start(0)  # gives up on the indexes after 1 s; the health check retries
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            request = pb.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.RegisterCenter(request, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "preparing its database" in (refused.value.details() or "")
    finally:
        await app.stop()
