"""The seed keeps its own fees for history: a catalogue fee changed since leaves its batches."""

from typing import Any

import grpc

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
