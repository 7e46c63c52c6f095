"""The ingest worker's composition root: store, handler, consumer, and a health port."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from sanad import mongo
from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import Topology
from sanad.domain.clock import utcnow
from sanad.rpc.server import RunningServer, start_server
from sanad.telemetry.metrics import prepare_outcomes
from workers.ingest.handlers import DEAD_LETTER_REASONS, IngestHandler
from workers.ingest.settings import IngestSettings
from workers.ingest.store import IngestStore
from workers.lifecycle import Gate, consume_until_stopped, handling_check

log = logging.getLogger("sanad.ingest")
# How far back the rollups say where open transactions may be: services' SLAs run to 30 days,
# and a transaction awaiting documents or an agency stays open past its SLA.
OPEN_DAYS = 90
# How often the worker looks in the rollups for places that gained their first transactions
# since: the batch worker stores transactions whose outcomes this worker counts later.
PLACES_POLL_S = 30.0


@dataclass
class IngestApp:
    """Consumes the ingest queue until stopped; health SERVING while MongoDB and the broker are."""

    settings: IngestSettings
    client: AsyncMongoClient[mongo.Document]
    store: IngestStore
    consumer: MicroBatchConsumer
    health: RunningServer | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    indexes: mongo.Indexes = field(init=False)
    # The places and agencies whose outcome series this process has prepared from the rollups.
    prepared: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.indexes = mongo.Indexes(self.client, self._first_contact)

    async def _first_contact(self) -> None:
        """Once MongoDB answers, the indexes: all that readiness waits for (the rollups' scan
        of follow_places is not; a health check has 2 s, and a longer scan cancelled by it
        started again at every check)."""
        await self.store.ensure_indexes()

    async def follow_places(self) -> None:
        """Until stopped: once the indexes are built, the outcome series of the places of the
        last OPEN_DAYS' rollups, then every PLACES_POLL_S of those new in today's and
        yesterday's (prepare_places)."""
        days = OPEN_DAYS
        while not self.stopping.is_set():
            if self.indexes.built:
                await self.prepare_places(days)
                days = 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PLACES_POLL_S if days == 1 else 1.0):
                    await self.stopping.wait()

    async def prepare_places(self, days: int) -> None:
        """Create at zero the outcome series of every place and agency whose rollups have
        transactions submitted in the last `days`, so that the first outcome this process counts
        there is seen too (telemetry.metrics.prepare_outcomes). A place is also prepared when
        this worker stores a transaction there; this finds those the batch worker stored."""
        since = (utcnow() - timedelta(days=days)).date().isoformat()
        try:
            places = await self.store.recent_places(since)
        except PyMongoError as error:  # the series then come with the next look or transaction
            log.warning("cannot read the recent rollups to prepare outcome series: %s", error)
            return
        new = places - self.prepared
        for place in new:
            prepare_outcomes(*place)
        self.prepared |= new
        if new:
            log.info("outcome series prepared for %d places and agencies", len(new))

    async def run(self, health_port: int) -> None:
        """Serve health; once MongoDB answers and the indexes are built, consume until stop(),
        reconnecting to the broker with backoff."""
        self.health = await start_server(
            self.settings,
            health_port,
            [],
            checks={
                "mongodb": self.indexes.ready,
                "rabbitmq": self._broker_ready,
                "handling": handling_check(
                    self.consumer.handling, self.settings.ingest_failing_after_s
                ),
            },
        )
        # Indexes before the first micro-batch, too: building one while a transaction is open
        # on the same collection stalls it.
        gate = Gate(self.indexes.ready, "MongoDB", self.settings.mongo_timeout_ms / 1000)
        places = asyncio.create_task(self.follow_places(), name="follow places")
        try:
            await consume_until_stopped(self.consumer, self.stopping, gate)
        finally:
            places.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await places

    async def stop(self) -> None:
        """Finish the current micro-batch (within shutdown_grace_s), ack it, and close."""
        self.stopping.set()
        if self.health is not None:  # NOT_SERVING while the current batch drains
            await self.health.health.shutdown()

    async def close(self) -> None:
        if self.health is not None:
            await self.health.stop(1.0)
        await mongo.close(self.client)

    async def _broker_ready(self) -> bool:
        return self.consumer.connected


def build_app(settings: IngestSettings) -> IngestApp:
    """Assemble the worker from settings; nothing connects until run()."""
    client = mongo.connect(settings, "sanad-ingest")
    store = IngestStore(client, mongo.database(client, settings))
    topology = Topology(settings.amqp_prefix)
    options = BatchOptions(
        prefetch=settings.ingest_prefetch,
        max_messages=settings.ingest_batch_max,
        max_wait_s=settings.ingest_batch_wait_ms / 1000,
        max_retries=settings.ingest_max_retries,
        retry_first_delay_s=settings.ingest_retry_first_delay_ms / 1000,
        retry_delay_s=settings.ingest_retry_delay_ms / 1000,
        broker_timeout_s=settings.amqp_timeout_s,
        drain_grace_s=settings.shutdown_grace_s,
    )
    consumer = MicroBatchConsumer(
        settings.broker_url,
        topology,
        topology.ingest_queue,
        IngestHandler(store, settings.ingest_publisher_names),
        options,
        reasons=DEAD_LETTER_REASONS,
    )
    return IngestApp(settings, client, store, consumer)
