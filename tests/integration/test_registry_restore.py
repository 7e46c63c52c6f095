"""A registry restored from a backup and changed again before its followers come back: their
resume names the change they hold at their revision, the registry no longer has it at that
number, and they replay from the start instead of skipping the changes given that number."""

import asyncio
import time

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.v1 import registry_pb2, registry_pb2_grpc
from tests.integration.conftest import eventually
from tests.integration.registry_served import refused
from tests.integration.registry_support import centre
from tests.integration.test_registry_restart import _async, open_centre, restartable

pytestmark = pytest.mark.integration

REGISTRY_COLLECTIONS = (
    "registry_centers",
    "registry_catalog",
    "registry_changes",
    "registry_counters",
)


async def test_followers_of_a_restored_registry_changed_since_replay_it(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> None:
    # Before: intake resumed from its revision, which the restored registry's next change had
    # reached again, skipped that change, and went on accepting submissions for a centre the
    # registry held suspended (registry hunt).
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[database_name]
    async with restartable(mongo_url, database_name, amqp_url, amqp_prefix, grace_s=60) as up:
        center_id, service = await open_centre(up)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{up.registry_port}")
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        copy = up.intake.snapshot

        async def transition(action: int) -> None:
            request = registry_pb2.TransitionLicenceRequest(
                center_id=center_id, action=action, reason="inspection"
            )
            await registry.TransitionLicence(request, timeout=10)

        def status_in_copy() -> str:
            return copy.centers[center_id].licence_status

        try:
            await transition(registry_pb2.LICENCE_ACTION_SUSPEND)
            await eventually(lambda: _async(status_in_copy() == "SUSPENDED"), within_s=10)
            backup = {name: await db[name].find({}).to_list() for name in REGISTRY_COLLECTIONS}
            await transition(registry_pb2.LICENCE_ACTION_REINSTATE)
            await eventually(lambda: _async(status_in_copy() == "ACTIVE"), within_s=10)

            await up.stop_registry()
            for name, docs in backup.items():  # restored from the backup
                await db[name].delete_many({})
                if docs:
                    await db[name].insert_many(docs)
            await up.start_registry()
            # The restored registry's first change takes the number the reinstatement had.
            other = await registry.RegisterCenter(
                registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}", service)),
                timeout=10,
            )
            await eventually(
                lambda: _async(copy.ready and other.center.id in copy.centers), within_s=20
            )
            assert status_in_copy() == "SUSPENDED"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await up.submit(center_id, service)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        finally:
            await channel.close()
    await client.close()


async def test_a_resume_naming_another_change_at_its_revision_is_out_of_range(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> None:
    async with restartable(mongo_url, database_name, amqp_url, amqp_prefix, grace_s=60) as up:
        center_id, _ = await open_centre(up)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{up.registry_port}") as channel:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            held = (
                await registry.GetCenter(registry_pb2.GetCenterRequest(id=center_id), timeout=10)
            ).center

            async def first(at: registry_pb2.Center) -> registry_pb2.WatchCentersResponse:
                request = registry_pb2.WatchCentersRequest(
                    since_revision=held.revision, since_update_time=at.update_time
                )
                stream = registry.WatchCenters(request)
                try:
                    return await asyncio.wait_for(stream.read(), 10)
                finally:
                    stream.cancel()

            assert (await first(held)).synced.revision == held.revision
            other = registry_pb2.Center()
            other.CopyFrom(held)
            other.update_time.seconds -= 1
            bad = await refused(first(other), grpc.StatusCode.OUT_OF_RANGE)
            assert bad == [
                (
                    "since_revision",
                    f"revision {held.revision} is now another change than the one this"
                    " subscriber was sent (the registry's database was restored); watch from 0"
                    " to resynchronise",
                )
            ]
