"""The metrics service's composition root."""

import asyncio
from dataclasses import dataclass, field

import grpc
from pymongo import AsyncMongoClient

from sanad import mongo
from sanad.registry_watch import registry_channel
from sanad.rpc.server import (
    SMALL_REQUEST_BYTES,
    Registration,
    RunningServer,
    read_own_files,
    start_server,
)
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics import award
from services.metrics.directory import WatchedDirectory
from services.metrics.places import RegistryPlaces
from services.metrics.queries import MetricsQueries
from services.metrics.servicer import MetricsServicer
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore

SERVICE_NAME = metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name


@dataclass
class MetricsApp:
    """Everything the metrics process runs; start() binds, stop() drains."""

    settings: MetricsSettings
    client: AsyncMongoClient[mongo.Document]
    store: MetricsStore
    registry_channel: grpc.aio.Channel
    directory: WatchedDirectory
    queries: MetricsQueries
    server: RunningServer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    indexes: mongo.Indexes = field(init=False)

    def __post_init__(self) -> None:
        # Checked, never built: the ingest worker builds the rollup indexes (store.py says why).
        self.indexes = mongo.Indexes(self.client, self.store.check_indexes)

    async def start(self, port: int) -> int:
        """Check the rollup indexes, follow the registry's centres, then serve on port (0 for a
        free one); returns the port."""
        # NOT_SERVING until every rollup index exists (a report would scan whole collections):
        # the health check looks again until the ingest worker has built them, and says which
        # it waits for; likewise while MongoDB is not up yet.
        files = read_own_files(self.settings)  # a bad file is told before the wait
        await self.indexes.build_at_start(self.settings.mongo_timeout_ms / 1000)
        self.tasks.append(asyncio.create_task(self.directory.run()))
        servicer = MetricsServicer(self.queries)
        self.server = await start_server(
            self.settings,
            port,
            [
                Registration(
                    SERVICE_NAME,
                    lambda s: metrics_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, s),
                )
            ],
            checks={
                "mongodb": self.indexes.ready,
                "registry_directory": self._directory_ready,
            },
            files=files,
            max_request_bytes=SMALL_REQUEST_BYTES,
        )
        return self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s, self.settings.shutdown_notice_s)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.registry_channel.close()
        await mongo.close(self.client)

    async def _directory_ready(self) -> bool:
        return self.directory.ready


def award_settings(settings: MetricsSettings) -> tuple[award.Weights, award.References]:
    """The award weights and references chosen in settings."""
    weights = award.Weights(
        speed=settings.award_weight_speed,
        quality=settings.award_weight_quality,
        productivity=settings.award_weight_productivity,
        satisfaction=settings.award_weight_satisfaction,
    )
    references = award.References(
        median_ceiling_hours=settings.award_median_ceiling_hours,
        productivity_target_per_staff=settings.award_productivity_target_per_staff,
    )
    return weights, references


def build_app(settings: MetricsSettings) -> MetricsApp:
    """Assemble the metrics service from settings; nothing connects until start()."""
    client = mongo.connect(settings, "sanad-metrics")
    store = MetricsStore(mongo.database(client, settings), settings.mongo_timeout_ms / 1000)
    channel = registry_channel(settings, settings.registry_target)
    directory = WatchedDirectory(
        channel, settings.grpc_outbound_timeout_s, settings.registry_outage_grace_s
    )
    places = RegistryPlaces(channel, settings.grpc_outbound_timeout_s)
    queries = MetricsQueries(
        store,
        directory,
        places,
        *award_settings(settings),
        min_completed=settings.award_min_completed,
    )
    return MetricsApp(settings, client, store, channel, directory, queries)
