"""Intake's composition root: snapshot, publisher, stores and the gRPC server."""

import asyncio
import logging
from dataclasses import dataclass, field

import grpc
from prometheus_client import Gauge
from pymongo import AsyncMongoClient

from sanad import mongo
from sanad.amqp.packing import Packing, PackingPublisher
from sanad.amqp.publisher import ConfirmedPublisher
from sanad.amqp.topology import Topology
from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE
from sanad.registry_lookup import RegistryLookup
from sanad.registry_snapshot import RegistrySnapshot
from sanad.registry_watch import registry_channel
from sanad.rpc.server import SMALL_REQUEST_BYTES, Registration, RunningServer, start_server
from sanad.security.audit_log import AuditLog
from sanad.settings import amqp_user
from sanad.v1 import intake_pb2, intake_pb2_grpc, registry_pb2_grpc
from services.intake.left_unsent import LeftUnsent
from services.intake.operations import Intake
from services.intake.reading import Reader
from services.intake.request_store import RequestStore
from services.intake.resends import Resends
from services.intake.servicer import IntakeServicer
from services.intake.settings import IntakeSettings
from services.intake.store import TransactionStore
from services.intake.streaming import StreamLimits, Streams
from services.intake.tracking import Tracker

log = logging.getLogger("sanad.intake")

SERVICE_NAME = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name


# Intake's own gauges, defined here so that only intake exports them (in sanad.telemetry every
# process did, at 0).
INTAKE_RESENDS_WAITING = Gauge(
    "sanad_intake_resends_waiting",
    "Transactions whose status change or rating intake may have accepted without seeing it "
    "published, waiting to be tried again in the background (most leave within seconds).",
)
INTAKE_RESENDS_OLDEST = Gauge(
    "sanad_intake_resends_oldest_seconds",
    "How long the transaction waiting longest to have its change sent again has waited.",
)
INTAKE_UNSENT_OLDEST = Gauge(
    "sanad_intake_unsent_oldest_seconds",
    "Age of the oldest note of a status change or rating accepted by any intake and not yet "
    "seen published, as this process's last sweep of intake_unsent found it (every intake "
    "reads the same notes; 0 with none older than a minute).",
)


@dataclass
class IntakeApp:
    """Everything the intake process runs; start() binds, stop() drains."""

    settings: IntakeSettings
    client: AsyncMongoClient[mongo.Document]
    registry_channel: grpc.aio.Channel
    snapshot: RegistrySnapshot
    publisher: ConfirmedPublisher
    packer: PackingPublisher
    intake: Intake
    reader: Reader
    tracker: Tracker
    left_unsent: LeftUnsent
    server: RunningServer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The open SubmitTransactions streams: they stop taking items as the drain begins.
    streams: Streams = field(default_factory=Streams)

    async def start(self, port: int) -> int:
        """Serve on port (0 for a free one); dependencies connect in the background."""
        self.tasks += [
            asyncio.create_task(self.snapshot.run()),
            asyncio.create_task(self.publisher.connect()),
            asyncio.create_task(self.tracker.resends.run()),
            asyncio.create_task(self.left_unsent.run()),
        ]
        limits = StreamLimits(
            self.settings.stream_max_inflight,
            self.settings.stream_max_items,
            self.settings.stream_max_inflight_bytes,
        )
        servicer = IntakeServicer(
            self.intake,
            self.reader,
            self.tracker,
            limits,
            self.settings.watch_poll_s,
            max_message_bytes=self.settings.grpc_max_message_bytes,
            streams=self.streams,
        )
        self.server = await start_server(
            self.settings,
            port,
            [
                Registration(
                    SERVICE_NAME,
                    lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s),
                )
            ],
            checks={
                "mongodb": lambda: mongo.ping(self.client),
                "rabbitmq": self._broker_ready,
                "registry_snapshot": self._snapshot_ready,
            },
            audit_log=AuditLog(mongo.database(self.client, self.settings)),
            name="intake",
            max_request_bytes=SMALL_REQUEST_BYTES,
        )
        return self.server.port

    async def stop(self) -> None:
        """NOT_SERVING, drain in-flight calls, then close connections."""
        if self.server is not None:
            await self.server.stop(
                self.settings.shutdown_grace_s,
                self.settings.shutdown_notice_s,
                draining=self._draining,
            )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.packer.drain()
        await self.publisher.close()
        await self.registry_channel.close()
        await mongo.close(self.client)

    def _draining(self) -> None:
        """As the drain begins: open watches end, open submission streams take no more items
        (both would otherwise hold the stop for its whole grace)."""
        self.reader.close()
        self.streams.stop()

    async def _broker_ready(self) -> bool:
        return self.publisher.is_healthy()

    async def _snapshot_ready(self) -> bool:
        return self.snapshot.ready


def build_app(settings: IntakeSettings) -> IntakeApp:
    """Assemble intake from settings; nothing connects until start()."""
    client = mongo.connect(settings, "sanad-intake")
    db = mongo.database(client, settings)
    requests, transactions = RequestStore(db), TransactionStore(db)
    channel = registry_channel(settings, settings.registry_target)
    snapshot = RegistrySnapshot(channel, settings.registry_outage_grace_s)
    topology = Topology(settings.amqp_prefix)
    publisher = ConfirmedPublisher(
        settings.broker_url,
        topology,
        settings.publish_timeout_s,
        name=f"sanad-intake {settings.amqp_prefix}",
        # The ingest worker stores only what its publishers' users sent (SANAD_INGEST_PUBLISHERS).
        user_id=amqp_user(settings.broker_url),
    )
    # Submissions are packed (one message for those that arrive while others await confirms);
    # status changes and ratings are few and go alone.
    packer = PackingPublisher(
        publisher,
        {SUBMITTED_TYPE: SUBMITTED_PACK_TYPE},
        Packing(max_items=settings.pack_max_items, max_inflight=settings.pack_max_inflight),
    )
    intake = Intake(
        snapshot,
        packer,
        requests,
        topology,
        settings.civil_id_secret.get_secret_value().encode(),
        lookup=RegistryLookup(registry_pb2_grpc.RegistryServiceStub(channel)),
    )
    resends = Resends()
    INTAKE_RESENDS_WAITING.set_function(lambda: len(resends))
    INTAKE_RESENDS_OLDEST.set_function(resends.oldest_s)
    reader = Reader(transactions)
    tracker = Tracker(transactions, requests, publisher, topology, resends)
    left_unsent = LeftUnsent(
        requests,
        resends,
        {"status": tracker.changes.send_latest, "rating": tracker.send_rating},
    )
    INTAKE_UNSENT_OLDEST.set_function(lambda: left_unsent.oldest_s)
    return IntakeApp(
        settings,
        client,
        channel,
        snapshot,
        publisher,
        packer,
        intake,
        reader,
        tracker,
        left_unsent,
    )
