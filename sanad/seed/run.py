"""Seeds a running system: registry facts over gRPC, then history through the batch queue."""

import logging
import time
from dataclasses import dataclass

import grpc

from sanad.rpc.channel import insecure_channel, secure_channel
from sanad.seed.batches import BatchLoader, LoadResult
from sanad.seed.plan import DEFAULT_BATCH_SIZE, SeedPlan
from sanad.seed.registry import ACTIVE, SeedRegistry, registry_stub
from sanad.v1 import registry_pb2

log = logging.getLogger("sanad.seed")

SEED_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Targets:
    """Where the running system is."""

    registry: str
    amqp_url: str
    amqp_prefix: str
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout_s: float = 10.0
    # TLS towards the registry (None: plaintext) and a bearer token, as sanadctl has them.
    credentials: grpc.ChannelCredentials | None = None
    token: str = ""


@dataclass(frozen=True)
class SeedSummary:
    centres: int
    omani_staff: int
    wilayats: int
    completed_by_year: dict[int, int]
    load: LoadResult
    seconds: float
    # Centres found with a licence the seed leaves as it is (suspended, expired, cancelled):
    # "id (status)". Their history is loaded all the same: it happened while they were active.
    not_active: tuple[str, ...] = ()


async def seed(plan: SeedPlan, targets: Targets) -> SeedSummary:
    """Register the plan's centres and services, then load its history; returns a summary."""
    started = time.monotonic()
    if targets.credentials is None:
        channel = insecure_channel(targets.registry, SEED_MESSAGE_BYTES)
    else:
        channel = secure_channel(targets.registry, targets.credentials, SEED_MESSAGE_BYTES)
    try:
        registry = SeedRegistry(
            registry_stub(channel), timeout_s=targets.timeout_s, token=targets.token
        )
        fees = await registry.ensure_services()
        known = await registry.existing(plan.governorate)
        centres = plan.centres()
        found = {c.index: await registry.ensure_centre(c, plan.governorate, known) for c in centres}
    finally:
        await channel.close()
    ids = {index: str(centre.id) for index, centre in found.items()}
    not_active = tuple(
        f"{centre.id} ({registry_pb2.LicenceStatus.Name(centre.licence.status)})"
        for centre in found.values()
        if centre.licence.status != ACTIVE
    )
    log.info(
        "seed: %d centres registered, %d active; loading history",
        len(ids),
        len(ids) - len(not_active),
    )
    loader = BatchLoader(targets.amqp_url, targets.amqp_prefix)
    load = await loader.load(plan.batches(ids, fees, targets.batch_size))
    return SeedSummary(
        centres=len(centres),
        omani_staff=sum(c.omani_staff for c in centres),
        wilayats=len({c.wilayat_code for c in centres}),
        completed_by_year={year: plan.target(year) for year in plan.years},
        load=load,
        seconds=time.monotonic() - started,
        not_active=not_active,
    )
