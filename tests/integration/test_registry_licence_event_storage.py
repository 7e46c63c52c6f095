"""Licence events keep the expiry they left the licence with, through MongoDB, GetCenter and the
WatchCenters replay that metrics follows. Against the real MongoDB-wire server."""

import asyncio

import pytest

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    registry_fixture,
)

pytestmark = pytest.mark.integration


async def replayed(registry: Registry, center_id: str) -> pb.Center:
    """The centre as the WatchCenters replay last shows it."""
    stream = registry.stub.WatchCenters(pb.WatchCentersRequest(since_revision=0))
    last = pb.Center()
    try:
        while (message := await asyncio.wait_for(stream.read(), 5)).WhichOneof("event") != "synced":
            if message.center.id == center_id:
                last = message.center
    finally:
        stream.cancel()
    return last


async def test_an_activation_records_the_expiry_it_set_where_metrics_reads_it(
    registry: Registry,
) -> None:
    center = await registry.register()
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    approved, activated = shown.licence.history
    assert not approved.HasField("expires_at")  # no term before activation
    assert activated.expires_at == shown.licence.expires_at
    assert (await replayed(registry, center.id)).licence.history == shown.licence.history
