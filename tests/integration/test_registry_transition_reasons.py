"""A licence transition's reason is free text bounded as every other, so a centre, its
listings and its watch messages stay far below gRPC's message limit. Through the real
servicer against the real MongoDB-wire server."""

import grpc
import pytest

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


def approve(center_id: str, reason: str) -> pb.TransitionLicenceRequest:
    return pb.TransitionLicenceRequest(
        center_id=center_id, action=pb.LICENCE_ACTION_APPROVE, reason=reason
    )


async def test_an_overlong_reason_is_refused_by_field_and_changes_nothing(
    registry: Registry,
) -> None:
    center = await registry.register()
    for reason in ("r" * 501, "r" * 2_000_000):  # within the registry's 2 MiB
        bad = await refused(
            registry.stub.TransitionLicence(approve(center.id, reason)), Code.INVALID_ARGUMENT
        )
        assert [f for f, _ in bad] == ["reason"]
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown == center


async def test_a_reason_at_the_bound_is_recorded(registry: Registry) -> None:
    center = await registry.register()
    reply = await registry.stub.TransitionLicence(approve(center.id, "ن" * 500))
    assert reply.center.licence.history[-1].reason == "ن" * 500


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        ("\u200f", "is required: say why the licence changes"),
        (" \u3164 ", "is required: say why the licence changes"),
        ("ok\x1b[2J\nreason: forged", "must not contain control characters"),
        ("x\x00y", "must not contain control characters"),
    ],
)
async def test_a_reason_that_shows_nothing_or_holds_control_characters_is_refused(
    registry: Registry, reason: str, said: str
) -> None:
    center = await registry.register()
    bad = await refused(
        registry.stub.TransitionLicence(approve(center.id, reason)), Code.INVALID_ARGUMENT
    )
    assert bad == [("reason", said)]
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown == center
