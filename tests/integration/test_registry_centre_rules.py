"""Registration keeps each service code once; renewal opens 90 days before expiry. Through the
real servicer against the real MongoDB-wire server."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from sanad.v1 import registry_pb2 as pb
from services.registry.domain import a_year_after
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


async def test_register_center_keeps_each_service_code_once_as_set_center_services_does(
    registry: Registry,
) -> None:
    for code in ("S-A", "S-B"):
        await registry.add_service(code)
    center = await registry.register(
        offered_service_codes=["S-A", "S-B", "S-A"], blocked_service_codes=["S-B", "S-B"]
    )
    assert list(center.offered_service_codes) == ["S-A", "S-B"]
    assert list(center.blocked_service_codes) == ["S-B"]
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert list(shown.offered_service_codes) == ["S-A", "S-B"]
    bad = await refused(
        registry.register(offered_service_codes=["S-A", "S-A", "NOPE"]), Code.INVALID_ARGUMENT
    )
    assert [f for f, _ in bad] == ["center.offered_service_codes[2]"]  # as the caller sent it


async def test_renewal_is_refused_until_ninety_days_before_expiry_and_then_adds_one_year(
    registry: Registry,
) -> None:
    center = await registry.register()
    active = await registry.act(center.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    expires = active.licence.expires_at.ToDatetime(UTC)
    opens = expires - timedelta(days=90)
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await registry.act(center.id, pb.LICENCE_ACTION_RENEW)
    assert early.value.code() == Code.FAILED_PRECONDITION
    assert f"renewal opens on {opens:%Y-%m-%d}" in (early.value.details() or "")

    due = datetime.now(UTC) + timedelta(days=30)  # as if eleven months had passed
    await registry.app.store.centers.update_one(
        {"_id": center.id}, {"$set": {"licence.expires_at": due}}
    )
    renewed = await registry.act(center.id, pb.LICENCE_ACTION_RENEW)
    new_expiry = renewed.licence.expires_at.ToDatetime(UTC)
    assert abs(new_expiry - a_year_after(due)) < timedelta(milliseconds=1)
    await refused(registry.act(center.id, pb.LICENCE_ACTION_RENEW), Code.FAILED_PRECONDITION)
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown.licence.expires_at == renewed.licence.expires_at  # the re-sent one added nothing
    assert [e.action for e in shown.licence.history].count(pb.LICENCE_ACTION_RENEW) == 1
