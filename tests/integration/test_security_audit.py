"""The registry in required-auth mode records an audit trail that only admins can list."""

import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from sanad.devstack import certs
from sanad.rpc.status import field_violations
from sanad.v1 import audit_pb2, audit_pb2_grpc, registry_pb2, registry_pb2_grpc
from tests.integration.registry_support import centre, visa_renewal

pytestmark = pytest.mark.integration


@dataclass
class Secured:
    registry: registry_pb2_grpc.RegistryServiceStub
    audit: audit_pb2_grpc.AuditServiceStub
    tokens: dict[str, str]

    def as_(self, name: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[name]}"),)


@pytest.fixture
def secured(required_auth_registry: grpc.aio.Channel, pki: Path) -> Secured:
    tokens = {name: (pki / "tokens" / f"{name}.jwt").read_text().strip() for name in certs.EXAMPLES}
    return Secured(
        registry_pb2_grpc.RegistryServiceStub(required_auth_registry),
        audit_pb2_grpc.AuditServiceStub(required_auth_registry),
        tokens,
    )


async def test_changes_and_refusals_are_audited_and_listed_for_admins(secured: Secured) -> None:
    licence = f"LIC-{time.time_ns()}"
    reply = await secured.registry.RegisterCenter(
        registry_pb2.RegisterCenterRequest(center=centre(licence)),
        metadata=(*secured.as_("ministry-mociip"), ("x-request-id", "audit-req-1")),
        timeout=10,
    )
    center_id = reply.center.id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await secured.registry.TransitionLicence(
            registry_pb2.TransitionLicenceRequest(
                center_id=center_id, action=registry_pb2.LICENCE_ACTION_APPROVE, reason="no"
            ),
            metadata=secured.as_("ministry-rop"),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await secured.registry.GetCenter(
        registry_pb2.GetCenterRequest(id=center_id), metadata=secured.as_("admin"), timeout=10
    )

    listed = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(target_value=center_id),
        metadata=secured.as_("admin"),
        timeout=10,
    )
    seen = [(e.rpc.rsplit("/", 1)[1], e.subject, e.outcome) for e in listed.events]
    assert seen == [
        ("TransitionLicence", "rop-systems", "PERMISSION_DENIED"),
        ("RegisterCenter", "mociip-licensing", "OK"),
    ]
    registered = listed.events[1]
    assert registered.request_id == "audit-req-1"
    assert registered.target["center.licence.number"] == licence
    assert registered.agency_code == "MOCIIP"
    assert registered.recorded_by == "registry"
    assert registered.time.seconds > 0

    refusals = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(outcome="PERMISSION_DENIED", subject="rop-systems"),
        metadata=secured.as_("admin"),
        timeout=10,
    )
    assert [e.target["center_id"] for e in refusals.events] == [center_id]


async def test_a_registration_is_found_on_the_trail_by_the_licence_number_as_kept(
    secured: Secured,
) -> None:
    sent = f"da-niz-{time.time_ns()}"  # kept upper case, as the registry shows it
    reply = await secured.registry.RegisterCenter(
        registry_pb2.RegisterCenterRequest(center=centre(sent)),
        metadata=secured.as_("ministry-mociip"),
        timeout=10,
    )
    kept = reply.center.licence.number
    assert kept == sent.upper()
    listed = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(target_value=kept),
        metadata=secured.as_("admin"),
        timeout=10,
    )
    assert [(e.outcome, dict(e.target)) for e in listed.events] == [
        ("OK", {"center.licence.number": kept, "center.id": reply.center.id})
    ]


async def test_only_admins_list_the_audit_trail(secured: Secured) -> None:
    for name in ("ministry-mociip", "operator", "centre"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await secured.audit.ListAuditEvents(
                audit_pb2.ListAuditEventsRequest(), metadata=secured.as_(name), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_paging_of_the_audit_trail_is_invalid(secured: Secured) -> None:
    for request, field in (
        (audit_pb2.ListAuditEventsRequest(page_size=-1), "page_size"),
        (audit_pb2.ListAuditEventsRequest(page_token="not-ours"), "page_token"),
        # Digits to str.isdigit() that int() refuses, or that are not ours: superscript two,
        # Arabic-Indic "12".
        (audit_pb2.ListAuditEventsRequest(page_token="\u00b2"), "page_token"),
        (audit_pb2.ListAuditEventsRequest(page_token="\u0661\u0662"), "page_token"),
        # An offset, as tokens were before they named the last event read.
        (audit_pb2.ListAuditEventsRequest(page_token="100"), "page_token"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await secured.audit.ListAuditEvents(request, metadata=secured.as_("admin"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert [f for f, _ in field_violations(refused.value)] == [field], request


async def test_the_audit_trail_pages(secured: Secured) -> None:
    for _ in range(3):
        await secured.registry.RegisterCenter(
            registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}")),
            metadata=secured.as_("admin"),
            timeout=10,
        )
    first = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(page_size=2), metadata=secured.as_("admin"), timeout=10
    )
    second = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(page_size=2, page_token=first.next_page_token),
        metadata=secured.as_("admin"),
        timeout=10,
    )
    assert len(first.events) == 2
    assert first.next_page_token
    assert len(second.events) == 1
    assert not second.next_page_token
    assert {e.id for e in first.events}.isdisjoint({e.id for e in second.events})


async def test_events_written_while_the_trail_is_paged_repeat_nothing(secured: Secured) -> None:
    # The trail is read newest first: with an offset for a token, each event written after
    # the first page pushed the events already read into the next page (fuzz helper).
    async def register() -> None:
        await secured.registry.RegisterCenter(
            registry_pb2.RegisterCenterRequest(center=centre(f"LIC-{time.time_ns()}")),
            metadata=secured.as_("admin"),
            timeout=10,
        )

    async def page(token: str = "") -> audit_pb2.ListAuditEventsResponse:
        return await secured.audit.ListAuditEvents(
            audit_pb2.ListAuditEventsRequest(page_size=2, page_token=token),
            metadata=secured.as_("admin"),
            timeout=10,
        )

    for _ in range(4):
        await register()
    first = await page()
    for _ in range(2):
        await register()  # written between the two pages
    second = await page(first.next_page_token)
    read = [e.id for e in (*first.events, *second.events)]
    assert len(read) == len(set(read)) == 4
    assert read == sorted(read, reverse=True)
    assert not second.next_page_token


async def test_each_registry_change_leaves_one_ok_event_naming_its_caller_and_target(
    secured: Secured,
) -> None:
    """Every state-changing registry RPC that succeeds: one OK event, as the interceptor has
    always written it (stored since in the change's own MongoDB transaction)."""
    tag = f"each-{time.time_ns()}"
    code, licence = f"ROP-{tag}".upper(), f"LIC-{tag}"

    def by(name: str, step: str) -> tuple[tuple[str, str], ...]:
        return (*secured.as_(name), ("x-request-id", f"{tag}-{step}"))

    registry, pb = secured.registry, registry_pb2
    await registry.AddCatalogService(
        pb.AddCatalogServiceRequest(service=visa_renewal(code)), metadata=by("ministry-rop", "1")
    )
    await registry.UpdateCatalogService(
        pb.UpdateCatalogServiceRequest(
            service=pb.CatalogService(code=code, fee_baisa=6000),
            update_mask=field_mask_pb2.FieldMask(paths=["fee_baisa"]),
        ),
        metadata=by("ministry-rop", "2"),
    )
    registered = await registry.RegisterCenter(
        pb.RegisterCenterRequest(center=centre(licence)), metadata=by("ministry-mociip", "3")
    )
    center_id = registered.center.id
    await registry.UpdateCenter(
        pb.UpdateCenterRequest(
            center=pb.Center(id=center_id, name_en="Abraj Centre"),
            update_mask=field_mask_pb2.FieldMask(paths=["name_en"]),
        ),
        metadata=by("admin", "4"),
    )
    await registry.TransitionLicence(
        pb.TransitionLicenceRequest(
            center_id=center_id, action=pb.LICENCE_ACTION_APPROVE, reason="papers complete"
        ),
        metadata=by("ministry-mociip", "5"),
    )
    await registry.SetCenterServices(
        pb.SetCenterServicesRequest(center_id=center_id, offered_service_codes=[code]),
        metadata=by("admin", "6"),
    )
    await registry.RetireCatalogService(
        pb.RetireCatalogServiceRequest(code=code), metadata=by("admin", "7")
    )

    listed = await secured.audit.ListAuditEvents(
        audit_pb2.ListAuditEventsRequest(page_size=1000), metadata=secured.as_("admin")
    )
    trail = sorted(
        (e.request_id, e.rpc.rsplit("/", 1)[1], e.subject, e.role, e.agency_code, e.outcome,
         dict(e.target), e.recorded_by)
        for e in listed.events
        if e.request_id.startswith(tag)
    )  # fmt: skip
    assert trail == [
        (f"{tag}-1", "AddCatalogService", "rop-systems", "ministry", "ROP", "OK",
         {"service.code": code}, "registry"),
        (f"{tag}-2", "UpdateCatalogService", "rop-systems", "ministry", "ROP", "OK",
         {"service.code": code}, "registry"),
        (f"{tag}-3", "RegisterCenter", "mociip-licensing", "ministry", "MOCIIP", "OK",
         {"center.licence.number": licence.upper(), "center.id": center_id}, "registry"),
        (f"{tag}-4", "UpdateCenter", "admin", "admin", "", "OK",
         {"center.id": center_id}, "registry"),
        (f"{tag}-5", "TransitionLicence", "mociip-licensing", "ministry", "MOCIIP", "OK",
         {"center_id": center_id, "action": "LICENCE_ACTION_APPROVE"}, "registry"),
        (f"{tag}-6", "SetCenterServices", "admin", "admin", "", "OK",
         {"center_id": center_id}, "registry"),
        (f"{tag}-7", "RetireCatalogService", "admin", "admin", "", "OK",
         {"code": code}, "registry"),
    ]  # fmt: skip
