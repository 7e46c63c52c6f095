"""The metrics service's composition root."""

from dataclasses import dataclass

import grpc
from pymongo import AsyncMongoClient

from sanad import mongo
from sanad.rpc.channel import service_channel
from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics import award
from services.metrics.directory import RegistryDirectory
from services.metrics.queries import MetricsQueries
from services.metrics.servicer import MetricsServicer
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore

SERVICE_NAME = metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name
IDENTITY = "sanad-metrics"


@dataclass
class MetricsApp:
    """Everything the metrics process runs; start() binds, stop() drains."""

    settings: MetricsSettings
    client: AsyncMongoClient[mongo.Document]
    store: MetricsStore
    registry_channel: grpc.aio.Channel
    queries: MetricsQueries
    server: RunningServer | None = None

    async def start(self, port: int) -> int:
        """Create the rollup indexes, then serve on port (0 for a free one); returns the port."""
        await self.store.ensure_indexes()
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
            checks={"mongodb": lambda: mongo.ping(self.client)},
        )
        return self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s)
        await self.registry_channel.close()
        await self.client.close()


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
    store = MetricsStore(mongo.database(client, settings))
    channel = service_channel(settings, settings.registry_target)
    directory = RegistryDirectory(channel, IDENTITY, settings.grpc_outbound_timeout_s)
    queries = MetricsQueries(store, directory, *award_settings(settings))
    return MetricsApp(settings, client, store, channel, queries)
