"""The metrics service's composition root."""

from dataclasses import dataclass

from pymongo import AsyncMongoClient

from sanad import mongo
from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
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
    server: RunningServer | None = None

    async def start(self, port: int) -> int:
        """Serve on port (0 for a free one) and return the bound port."""
        servicer = MetricsServicer(self.store)
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
        await self.client.close()


def build_app(settings: MetricsSettings) -> MetricsApp:
    """Assemble the metrics service from settings; nothing connects until start()."""
    client = mongo.connect(settings, "sanad-metrics")
    return MetricsApp(settings, client, MetricsStore(mongo.database(client, settings)))
