"""A change sent without expected_revision applies to the entity as it stands, also when other
changes race it: the registry reloads, judges the rules again and saves, a bounded number of
times. With expected_revision, a race is still ABORTED. Through the real servicer against the
real MongoDB-wire server."""

import asyncio
import collections
from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from sanad.v1 import registry_pb2 as pb
from tests.integration.registry_served import (  # noqa: F401
    Registry,
    registry_fixture,
)

pytestmark = pytest.mark.integration
Code = grpc.StatusCode


async def outcomes(calls: list[Awaitable[object]]) -> collections.Counter[str]:
    """How many of the calls, run at once, ended with each status code."""

    async def outcome(call: Awaitable[object]) -> str:
        try:
            await call
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)
        return "OK"

    return collections.Counter(await asyncio.gather(*(outcome(c) for c in calls)))


def update(
    registry: Registry,
    patch: pb.Center,
    *paths: str,
    revision: int | None = None,
    request_id: str = "",
) -> Awaitable[object]:
    return registry.stub.UpdateCenter(
        pb.UpdateCenterRequest(
            center=patch, update_mask=FieldMask(paths=list(paths)), expected_revision=revision
        ),
        metadata=(("x-request-id", request_id),) if request_id else None,
    )


async def test_concurrent_updates_without_a_revision_all_apply(registry: Registry) -> None:
    center = await registry.register()
    names = [
        update(registry, pb.Center(id=center.id, name_en=f"N{i}"), "name_en", request_id=f"n{i}")
        for i in range(10)
    ]
    staff = [
        update(
            registry,
            pb.Center(id=center.id, omani_staff=i, total_staff=10),
            "omani_staff",
            "total_staff",
            request_id=f"s{i}",
        )
        for i in range(10)
    ]
    assert await outcomes(names + staff) == {"OK": 20}
    changes = registry.app.store.changes.find({"kind": "center", "key": center.id})
    assert len(await changes.to_list()) == 1 + 20
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert shown.total_staff == 10
    # Each call's OK audit event was stored once, with the try that saved its change.
    trail = registry.app.store.audit_log.find({"request_id": {"$in": ["n0", "n9", "s0", "s9"]}})
    assert sorted((e["request_id"], e["outcome"]) for e in await trail.to_list()) == [
        ("n0", "OK"),
        ("n9", "OK"),
        ("s0", "OK"),
        ("s9", "OK"),
    ]


async def test_concurrent_service_changes_without_a_revision_all_apply(registry: Registry) -> None:
    await registry.add_service("S-A")
    center = await registry.register()
    calls = [
        registry.stub.SetCenterServices(
            pb.SetCenterServicesRequest(center_id=center.id, offered_service_codes=["S-A"])
        )
        for _ in range(10)
    ]
    assert await outcomes(calls) == {"OK": 10}


async def test_racing_licence_transitions_are_judged_again_on_the_centre_as_it_stands(
    registry: Registry,
) -> None:
    center = await registry.register()
    await registry.act(center.id, pb.LICENCE_ACTION_APPROVE, pb.LICENCE_ACTION_ACTIVATE)
    suspends = [registry.act(center.id, pb.LICENCE_ACTION_SUSPEND) for _ in range(6)]
    # One suspends; the others, reloaded, find the licence suspended: never ABORTED.
    assert await outcomes(suspends) == {"OK": 1, "FAILED_PRECONDITION": 5}
    shown = (await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))).center
    assert [e.action for e in shown.licence.history].count(pb.LICENCE_ACTION_SUSPEND) == 1


async def test_concurrent_updates_from_one_read_revision_still_let_only_one_win(
    registry: Registry,
) -> None:
    center = await registry.register()
    calls = [
        update(
            registry, pb.Center(id=center.id, name_en=f"N{i}"), "name_en", revision=center.revision
        )
        for i in range(6)
    ]
    assert await outcomes(calls) == {"OK": 1, "ABORTED": 5}


async def test_concurrent_catalogue_updates_all_apply_each_as_a_new_version(
    registry: Registry,
) -> None:
    await registry.add_service("S-A")
    calls = [
        registry.stub.UpdateCatalogService(
            pb.UpdateCatalogServiceRequest(
                service=pb.CatalogService(code="S-A", sla_hours=10 + i),
                update_mask=FieldMask(paths=["sla_hours"]),
            )
        )
        for i in range(10)
    ]
    assert await outcomes(calls) == {"OK": 10}
    shown = await registry.stub.GetCatalogService(pb.GetCatalogServiceRequest(code="S-A"))
    assert shown.service.version == 1 + 10


async def test_a_service_retired_while_a_centre_takes_it_up_is_offered_only_if_taken_first(
    registry: Registry,
) -> None:
    # The services were checked before the transaction that saved the centre: a retirement
    # committed in between left the centre offering a retired service it never offered before
    # (a registry helper's race: 19 trials in 20 through SetCenterServices, 11 in 20 through
    # RegisterCenter). Now either the offer was saved first, at a lower revision than the
    # retirement, or it is refused as retired.
    async def taken(call: Awaitable[object]) -> pb.Center | grpc.aio.AioRpcError:
        try:
            answer = await call
        except grpc.aio.AioRpcError as error:
            return error
        return answer if isinstance(answer, pb.Center) else answer.center  # type: ignore[attr-defined]

    async def retired(code: str) -> int:
        reply = await registry.stub.RetireCatalogService(pb.RetireCatalogServiceRequest(code=code))
        return reply.service.revision

    outcomes = collections.Counter[str]()
    for trial in range(8):
        code, new_code = f"ROP-RACE{trial}", f"ROP-RACE{trial}-NEW"
        await registry.add_service(code)
        await registry.add_service(new_code)
        center = await registry.register()
        offer = registry.stub.SetCenterServices(
            pb.SetCenterServicesRequest(center_id=center.id, offered_service_codes=[code])
        )
        registration = registry.register(offered_service_codes=[new_code])
        offered, registered, *retirements = await asyncio.gather(
            taken(offer), taken(registration), retired(code), retired(new_code)
        )
        for answer, service, retirement in zip(
            (offered, registered), (code, new_code), retirements, strict=True
        ):
            if isinstance(answer, grpc.aio.AioRpcError):
                assert answer.code() == Code.INVALID_ARGUMENT, answer
                assert f"catalogue service {service!r} is retired" in str(answer.details())
                outcomes["refused"] += 1
            else:
                assert answer.revision < retirement, (service, answer.revision, retirement)
                outcomes["taken first"] += 1
    assert sum(outcomes.values()) == 16
