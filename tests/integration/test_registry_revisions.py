"""Revisions as the caller read them: stale writes are ABORTED, a watch past the latest revision
is OUT_OF_RANGE and one below 0 INVALID_ARGUMENT. Against the real MongoDB-wire server, through
the real servicer."""

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


async def read(registry: Registry, center_id: str) -> pb.Center:
    return (await registry.stub.GetCenter(pb.GetCenterRequest(id=center_id))).center


async def set_services(
    registry: Registry, center_id: str, *offered: str, revision: int | None = None
) -> list[str]:
    """SetCenterServices, sending the revision read when one is given; the offered codes."""
    reply = await registry.stub.SetCenterServices(
        pb.SetCenterServicesRequest(
            center_id=center_id, offered_service_codes=offered, expected_revision=revision
        )
    )
    return list(reply.center.offered_service_codes)


async def test_two_clerks_replacing_services_from_one_read_cannot_both_win(
    registry: Registry,
) -> None:
    for code in ("S-A", "S-B", "S-C"):
        await registry.add_service(code)
    center = await registry.register(offered_service_codes=["S-A"])
    first, second = await read(registry, center.id), await read(registry, center.id)

    offered = await set_services(registry, center.id, "S-A", "S-B", revision=first.revision)
    assert offered == ["S-A", "S-B"]
    await refused(
        set_services(registry, center.id, "S-A", "S-C", revision=second.revision), Code.ABORTED
    )
    assert list((await read(registry, center.id)).offered_service_codes) == ["S-A", "S-B"]

    again = await read(registry, center.id)  # the second clerk reads again and retries
    offered = await set_services(registry, center.id, "S-A", "S-B", "S-C", revision=again.revision)
    assert offered == ["S-A", "S-B", "S-C"]


async def test_set_center_services_without_a_revision_replaces_the_lists_as_before(
    registry: Registry,
) -> None:
    await registry.add_service("S-A")
    center = await registry.register()
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE)  # the centre moves on meanwhile
    assert await set_services(registry, center.id, "S-A") == ["S-A"]


async def test_update_center_applies_only_over_the_revision_the_caller_read(
    registry: Registry,
) -> None:
    center = await registry.register()
    read_at = center.revision
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE)

    async def update(name: str, revision: int | None) -> str:
        reply = await registry.stub.UpdateCenter(
            pb.UpdateCenterRequest(
                center=pb.Center(id=center.id, name_en=name),
                update_mask=FieldMask(paths=["name_en"]),
                expected_revision=revision,
            )
        )
        return reply.center.name_en

    await refused(update("Stale", read_at), Code.ABORTED)
    current = await read(registry, center.id)
    assert current.name_en == center.name_en
    assert await update("Current", current.revision) == "Current"
    assert await update("Unchecked", None) == "Unchecked"  # no revision: no check, as before
    bad = await refused(update("Zero", 0), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["expected_revision"]


async def test_a_watch_past_the_latest_revision_is_out_of_range_not_synced(
    registry: Registry,
) -> None:
    latest = (await registry.add_service("S-1")).revision
    streams = (
        lambda since: registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=since)),
        lambda since: registry.stub.WatchCenters(pb.WatchCentersRequest(since_revision=since)),
    )
    for open_stream in streams:
        ahead = open_stream(latest + 3)
        bad = await refused(asyncio.wait_for(ahead.read(), 5), Code.OUT_OF_RANGE)
        assert [f for f, _ in bad] == ["since_revision"]
        assert f"latest revision {latest}" in bad[0][1]
    at_latest = registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=latest))
    try:
        first = await asyncio.wait_for(at_latest.read(), 5)
        assert first.synced.revision == latest
        added = await registry.add_service("S-2")  # revision latest + 1: delivered, not skipped
        assert (await asyncio.wait_for(at_latest.read(), 5)).service == added
    finally:
        at_latest.cancel()


async def test_a_watch_from_a_negative_revision_is_invalid_argument_not_a_replay(
    registry: Registry,
) -> None:
    await registry.add_service("S-1")
    streams = (
        lambda since: registry.stub.WatchCatalog(pb.WatchCatalogRequest(since_revision=since)),
        lambda since: registry.stub.WatchCenters(pb.WatchCentersRequest(since_revision=since)),
    )
    for open_stream in streams:
        below = open_stream(-5)
        bad = await refused(asyncio.wait_for(below.read(), 5), Code.INVALID_ARGUMENT)
        assert bad == [("since_revision", "-5 is negative; watch from 0 to replay everything")]


async def test_a_change_to_what_a_centre_holds_already_keeps_its_revision_and_tells_no_watcher(
    registry: Registry,
) -> None:
    await registry.add_service("S-A")
    center = await registry.register(offered_service_codes=["S-A"])
    before = await read(registry, center.id)
    changes = {"kind": "center", "key": center.id}
    recorded = await registry.app.store.changes.count_documents(changes)

    same_name = await registry.stub.UpdateCenter(
        pb.UpdateCenterRequest(
            center=pb.Center(id=center.id, name_en=before.name_en),
            update_mask=FieldMask(paths=["name_en"]),
        )
    )
    assert await set_services(registry, center.id, "S-A") == ["S-A"]
    assert await set_services(registry, center.id, "S-A", revision=before.revision) == ["S-A"]

    assert same_name.center.revision == before.revision
    assert (await read(registry, center.id)) == before
    assert await registry.app.store.changes.count_documents(changes) == recorded
    # A real change still moves it on.
    moved = await set_services(registry, center.id)
    assert moved == []
    assert (await read(registry, center.id)).revision > before.revision
