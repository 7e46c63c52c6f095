"""A registry told to stop ends its watch streams as its drain begins: they never end by
themselves, and held every stop for its whole grace (10 s by default) while intake and the
batch worker watched."""

import time

import grpc
import pytest

from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.registry.app import build_app
from services.registry.settings import RegistrySettings

pytestmark = pytest.mark.integration


async def test_a_draining_registry_ends_its_watch_streams_instead_of_waiting_out_its_grace(
    mongo_url: str, database_name: str
) -> None:
    registry = build_app(
        RegistrySettings(
            mongo_url=mongo_url,
            mongo_database=database_name,
            grpc_host="127.0.0.1",
            shutdown_grace_s=60,
        )
    )
    port = await registry.start(0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        stream = stub.WatchCenters(registry_pb2.WatchCentersRequest(since_revision=0))
        assert (await stream.read()).WhichOneof("event") == "synced"

        started = time.monotonic()
        await registry.stop()
        stopped_in = time.monotonic() - started

        assert await stream.read() is grpc.aio.EOF  # ended, as a subscriber resumes from
        assert await stream.code() == grpc.StatusCode.OK
    assert stopped_in < 30  # well inside the 60 s grace, which the stream used to hold whole
