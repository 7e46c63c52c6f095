"""The seed keeps its own fees for history: a catalogue fee changed since leaves its batches."""

from dataclasses import replace
from typing import Any

import grpc
import pytest

from sanad.seed.catalogue import SERVICES
from sanad.seed.plan import SeedPlan
from sanad.seed.registry import SeedRegistry
from sanad.v1 import events_pb2, registry_pb2


class Catalogue:
    """A registry whose catalogue holds every seed service already, at fees `fee_of` says."""

    def __init__(self, fee_of: dict[str, int]) -> None:
        self.fee_of = fee_of

    async def AddCatalogService(self, request: Any, **call: Any) -> Any:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details=f"service {request.service.code} exists",
        )

    async def GetCatalogService(self, request: Any, **call: Any) -> Any:
        return registry_pb2.GetCatalogServiceResponse(
            service=registry_pb2.CatalogService(
                code=request.code, fee_baisa=self.fee_of[request.code]
            )
        )


def first_batches(plan: SeedPlan, fees: dict[str, int]) -> list[events_pb2.BatchSubmission]:
    ids = {c.index: f"C{c.index:02d}" for c in plan.centres()}
    batches = plan.batches(ids, fees, batch_size=50)
    return [next(batches) for _ in range(5)]


async def test_the_seed_batches_after_a_catalogue_fee_change_are_the_ones_sent_before() -> None:
    """A seed run again after `catalogue update --fee-baisa` resends its batch ids: with the
    new fee in its historic items, the batch worker would refuse them as other content."""
    seeded = {s.code: s.fee_baisa for s in SERVICES}
    changed = {code: fee + 500 for code, fee in seeded.items()}
    plan = SeedPlan(seed=7, scale=0.01)

    before = await SeedRegistry(Catalogue(seeded)).ensure_services()
    after = await SeedRegistry(Catalogue(changed)).ensure_services()

    assert after == before == seeded
    assert first_batches(plan, after) == first_batches(plan, before)


# Where each transition takes a licence, as the registry would.
AFTER = {
    registry_pb2.LICENCE_ACTION_APPROVE: registry_pb2.LICENCE_STATUS_INITIALLY_APPROVED,
    registry_pb2.LICENCE_ACTION_ACTIVATE: registry_pb2.LICENCE_STATUS_ACTIVE,
    registry_pb2.LICENCE_ACTION_REINSTATE: registry_pb2.LICENCE_STATUS_ACTIVE,
    registry_pb2.LICENCE_ACTION_RENEW: registry_pb2.LICENCE_STATUS_ACTIVE,
}


class Licences:
    """A registry holding one centre at a licence status; records the transitions asked for."""

    def __init__(self) -> None:
        self.actions: list[int] = []

    async def TransitionLicence(self, request: Any, **call: Any) -> Any:
        self.actions.append(request.action)
        return registry_pb2.TransitionLicenceResponse(
            center=registry_pb2.Center(
                id=request.center_id,
                licence=registry_pb2.Licence(number="L-1", status=AFTER[request.action]),
            )
        )


def known_at(status: int) -> dict[str, registry_pb2.Center]:
    centre = registry_pb2.Center(id="C1", licence=registry_pb2.Licence(number="L-1", status=status))
    return {"L-1": centre}


async def test_a_new_licence_is_taken_to_active() -> None:
    centre = SeedPlan(seed=7).centres()[0]
    registry = Licences()
    known = known_at(registry_pb2.LICENCE_STATUS_APPLIED)
    centre = replace(centre, licence_number="L-1")

    found = await SeedRegistry(registry).ensure_centre(centre, "DA", known)

    assert found.licence.status == registry_pb2.LICENCE_STATUS_ACTIVE
    assert registry.actions == [
        registry_pb2.LICENCE_ACTION_APPROVE,
        registry_pb2.LICENCE_ACTION_ACTIVATE,
    ]


@pytest.mark.parametrize(
    "status",
    [
        registry_pb2.LICENCE_STATUS_SUSPENDED,
        registry_pb2.LICENCE_STATUS_EXPIRED,
        registry_pb2.LICENCE_STATUS_CANCELLED,
    ],
)
async def test_a_licence_a_regulator_moved_is_left_as_it_is(status: int) -> None:
    # Seeding again reinstated a suspended centre and renewed an expired licence, in the
    # seed's name (registry hunt).
    registry = Licences()
    centre = replace(SeedPlan(seed=7).centres()[0], licence_number="L-1")

    found = await SeedRegistry(registry).ensure_centre(centre, "DA", known_at(status))

    assert found.licence.status == status
    assert registry.actions == []
