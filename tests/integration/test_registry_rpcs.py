"""Every RegistryService RPC against the real MongoDB-wire server, in-process over gRPC."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.errors import Aborted
from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    lapse,
    refused,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


def mask(*paths: str) -> FieldMask:
    return FieldMask(paths=list(paths))


async def test_reference_data_lists_governorates_wilayats_and_agencies(registry: Registry) -> None:
    governorates = await registry.stub.ListGovernorates(pb.ListGovernoratesRequest())
    assert len(governorates.governorates) == 11
    wilayats = await registry.stub.ListWilayats(pb.ListWilayatsRequest(governorate_code="DA"))
    assert "DA-NIZ" in {w.code for w in wilayats.wilayats}
    assert {w.governorate_code for w in wilayats.wilayats} == {"DA"}
    agencies = await registry.stub.ListAgencies(pb.ListAgenciesRequest())
    assert "ROP" in {a.code for a in agencies.agencies}


async def test_a_registered_centre_reads_back_with_its_licence_history(registry: Registry) -> None:
    center = await registry.register()
    active = await registry.act(center.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown == active
    assert shown.licence.status == pb.LICENCE_STATUS_ACTIVE
    assert [e.action for e in shown.licence.history] == [
        pb.LICENCE_ACTION_APPROVE,
        pb.LICENCE_ACTION_ACTIVATE,
    ]
    assert shown.revision > center.revision


async def test_centre_errors_carry_the_right_codes(registry: Registry) -> None:
    stub = registry.stub
    center = await registry.register()
    bad = await refused(
        stub.RegisterCenter(pb.RegisterCenterRequest(center=pb.Center(omani_staff=-1))),
        Code.INVALID_ARGUMENT,
    )
    assert {"center.name_ar", "center.licence.number", "center.omani_staff"} <= {f for f, _ in bad}
    bad = await refused(
        registry.register(omani_staff=2_000_000_000, total_staff=2_147_483_647),
        Code.INVALID_ARGUMENT,
    )
    assert {f for f, _ in bad} == {"center.omani_staff", "center.total_staff"}
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        # A retry whose first answer was lost learns the centre it registered.
        await stub.RegisterCenter(pb.RegisterCenterRequest(center=center))
    assert taken.value.code() == Code.ALREADY_EXISTS
    assert f"(centre {center.id})" in (taken.value.details() or "")
    bad = await refused(registry.register(wilayat_code="MA-SEB"), Code.INVALID_ARGUMENT)
    assert bad == [("center.wilayat_code", "wilayat MA-SEB is in governorate MA, not DA")]
    await refused(stub.GetCenter(pb.GetCenterRequest(id="nope")), Code.NOT_FOUND)
    assert await refused(stub.GetCenter(pb.GetCenterRequest()), Code.INVALID_ARGUMENT) == [
        ("id", "is required")
    ]
    await refused(registry.act(center.id, pb.LICENCE_ACTION_SUSPEND), Code.FAILED_PRECONDITION)
    bad = await refused(registry.act(center.id, 0), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["action"]
    bad = await refused(registry.act(center.id, 99), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["action"]
    await refused(registry.act("nope", pb.LICENCE_ACTION_APPROVE), Code.NOT_FOUND)


async def test_a_licence_transition_without_a_reason_is_refused_and_changes_nothing(
    registry: Registry,
) -> None:
    center = await registry.register()
    for reason in ("", "  \t"):
        request = pb.TransitionLicenceRequest(
            center_id=center.id, action=pb.LICENCE_ACTION_APPROVE, reason=reason
        )
        bad = await refused(registry.stub.TransitionLicence(request), Code.INVALID_ARGUMENT)
        assert [f for f, _ in bad] == ["reason"]
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown.licence.status == pb.LICENCE_STATUS_APPLIED
    assert list(shown.licence.history) == []


async def test_update_center_changes_only_the_masked_fields(registry: Registry) -> None:
    center = await registry.register()
    patch = pb.Center(
        id=center.id,
        name_en="Abraj Al Sharq",
        wilayat_code="DA-BAH",
        omani_staff=99,
        contact=pb.Contact(phone="+96825000000", email="ignored@example.om"),
    )
    reply = await registry.stub.UpdateCenter(
        pb.UpdateCenterRequest(
            center=patch, update_mask=mask("name_en", "wilayat_code", "contact.phone")
        )
    )
    updated = reply.center
    assert (updated.name_en, updated.wilayat_code) == ("Abraj Al Sharq", "DA-BAH")
    assert (updated.omani_staff, updated.contact.phone, updated.contact.email) == (
        3,
        "+96825000000",
        "",
    )
    assert updated.name_ar == center.name_ar
    assert updated.revision > center.revision


async def test_update_center_refuses_bad_masks_values_and_places(registry: Registry) -> None:
    stub = registry.stub
    center = await registry.register()

    def update(*paths: str, **values: object) -> object:
        patch = pb.Center(id=values.pop("id", center.id), **values)  # type: ignore[arg-type]
        return stub.UpdateCenter(pb.UpdateCenterRequest(center=patch, update_mask=mask(*paths)))

    bad = await refused(update("name_en", "licence", "revision", "id"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["update_mask"] * 3
    await refused(update(), Code.INVALID_ARGUMENT)
    bad = await refused(update("name_en", "total_staff", total_staff=1), Code.INVALID_ARGUMENT)
    assert {f for f, _ in bad} == {"center.name_en", "center.total_staff"}
    bad = await refused(update("wilayat_code", wilayat_code="MA-SEB"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.wilayat_code"]
    bad = await refused(update("governorate_code", governorate_code="MA"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.wilayat_code"]
    bad = await refused(update("wilayat_code", wilayat_code="XX-NOPE"), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.wilayat_code"]
    await refused(update("name_en", id="nope", name_en="x"), Code.NOT_FOUND)
    await refused(update("name_en", id="", name_en="x"), Code.INVALID_ARGUMENT)


async def test_set_center_services_replaces_offered_and_blocked(registry: Registry) -> None:
    for code in ("S-A", "S-B", "S-C"):
        await registry.add_service(code)
    center = await registry.register(offered_service_codes=["S-A"])
    reply = await registry.stub.SetCenterServices(
        pb.SetCenterServicesRequest(
            center_id=center.id,
            offered_service_codes=["S-B", "S-C", "S-B"],
            blocked_service_codes=["S-C"],
        )
    )
    assert list(reply.center.offered_service_codes) == ["S-B", "S-C"]
    assert list(reply.center.blocked_service_codes) == ["S-C"]
    bad = await refused(
        registry.stub.SetCenterServices(
            pb.SetCenterServicesRequest(
                center_id=center.id,
                offered_service_codes=["S-A", "NOPE-1"],
                blocked_service_codes=["NOPE-2"],
            )
        ),
        Code.INVALID_ARGUMENT,
    )
    assert [f for f, _ in bad] == ["offered_service_codes[1]", "blocked_service_codes[0]"]
    bad = await refused(
        registry.stub.SetCenterServices(
            pb.SetCenterServicesRequest(
                center_id=center.id,
                offered_service_codes=["S-A", "S-A", "BAD"],
                blocked_service_codes=["S-B", "S-B", "S-B", "BAD"],
            )
        ),
        Code.INVALID_ARGUMENT,
    )
    assert [f for f, _ in bad] == ["offered_service_codes[2]", "blocked_service_codes[3]"]
    await refused(
        registry.stub.SetCenterServices(pb.SetCenterServicesRequest(center_id="nope")),
        Code.NOT_FOUND,
    )
    bad = await refused(registry.register(offered_service_codes=["NOPE"]), Code.INVALID_ARGUMENT)
    assert [f for f, _ in bad] == ["center.offered_service_codes[0]"]


async def test_a_stale_write_never_overwrites_a_newer_revision(registry: Registry) -> None:
    center = await registry.register()
    stale = await registry.app.store.get_center(center.id)
    assert stale is not None
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE)
    with pytest.raises(Aborted):  # ABORTED: a concurrent change came first (AIP-154)
        await registry.app.store.save_center(stale, new=False)
    shown = await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))
    assert shown.center.licence.status == pb.LICENCE_STATUS_INITIALLY_APPROVED
    assert shown.center.name_ar == stale.name_ar


async def test_an_expired_licence_reads_expired_and_can_be_renewed(registry: Registry) -> None:
    center = await registry.register()
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    await lapse(registry, center.id)
    shown = await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))
    assert shown.center.licence.status == pb.LICENCE_STATUS_EXPIRED
    await refused(registry.act(center.id, pb.LICENCE_ACTION_SUSPEND), Code.FAILED_PRECONDITION)
    renewed = await registry.act(center.id, pb.LICENCE_ACTION_RENEW)
    assert renewed.licence.status == pb.LICENCE_STATUS_ACTIVE
    assert renewed.licence.expires_at.ToDatetime(UTC) > datetime.now(UTC) + timedelta(days=360)
