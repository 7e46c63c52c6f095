"""The seed's registry and batch loader, faked for `sanadctl seed` in-process."""

from typing import Any

from sanad.seed.batches import LoadResult
from sanad.seed.catalogue import SERVICES
from sanad.seed.centres import SeedCentre
from sanad.v1 import registry_pb2

# A small seed: the full centres, a thousandth of one year's volume.
SEED = ["seed", "--scale", "0.001", "--years", "2024"]


class Registered:
    """The registry as the seed finds it once its services and centres are there."""

    def __init__(self, stub: Any, **settings: Any) -> None:
        del stub, settings

    async def ensure_services(self) -> dict[str, int]:
        return {service.code: service.fee_baisa for service in SERVICES}

    async def existing(self, governorate: str) -> dict[str, Any]:
        return {}

    async def ensure_centre(
        self, centre: SeedCentre, governorate: str, known: Any
    ) -> registry_pb2.Center:
        return registry_pb2.Center(
            id=f"C-{centre.index}",
            licence=registry_pb2.Licence(status=registry_pb2.LICENCE_STATUS_ACTIVE),
        )


class Loaded:
    """A batch loader whose every batch the worker stored."""

    def __init__(self, amqp_url: str, prefix: str, **settings: Any) -> None:
        del amqp_url, prefix, settings

    async def load(self, batches: Any) -> LoadResult:
        return LoadResult(batches=3, accepted=1_234, rejected=0, retried=1)
