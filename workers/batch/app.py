"""The batch worker's composition root: snapshot, store, handler, consumer and a health port."""

import asyncio
from dataclasses import dataclass, field

import grpc
from pymongo import AsyncMongoClient

from sanad import mongo
from sanad.amqp.consumer import BatchOptions, MicroBatchConsumer
from sanad.amqp.topology import Topology
from sanad.registry_lookup import RegistryLookup
from sanad.registry_snapshot import RegistrySnapshot
from sanad.registry_watch import registry_channel
from sanad.rpc.server import RunningServer, start_server
from sanad.v1 import registry_pb2_grpc
from workers.batch.authorization import authorizer, migration_authorizer
from workers.batch.handlers import BatchHandler
from workers.batch.refusals import DEAD_LETTER_REASONS, Limits
from workers.batch.settings import BatchSettings
from workers.batch.store import BatchStore
from workers.lifecycle import Gate, consume_until_stopped, handling_check
from workers.storage.submissions import SubmissionStore


@dataclass
class BatchApp:
    """Consumes the batch queue until stopped; SERVING while MongoDB, broker and registry are."""

    settings: BatchSettings
    client: AsyncMongoClient[mongo.Document]
    registry_channel: grpc.aio.Channel
    snapshot: RegistrySnapshot
    store: SubmissionStore
    consumer: MicroBatchConsumer
    health: RunningServer | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self, health_port: int) -> None:
        """Follow the registry, serve health, consume until stop(); reconnect with backoff."""
        self.tasks.append(asyncio.create_task(self.snapshot.run()))
        self.health = await start_server(
            self.settings,
            health_port,
            [],
            checks={
                "mongodb": lambda: mongo.ping(self.client),
                "rabbitmq": self._broker_ready,
                "registry_snapshot": self._snapshot_ready,
                "handling": handling_check(
                    self.consumer.handling, self.settings.batch_failing_after_s
                ),
            },
        )
        attempt_s = self.settings.mongo_timeout_ms / 1000
        gate = Gate(self._ready_to_consume, "MongoDB and the registry", attempt_s)
        await consume_until_stopped(self.consumer, self.stopping, gate)

    async def stop(self) -> None:
        """Finish the current batch (within shutdown_grace_s), ack it, and stop consuming."""
        self.stopping.set()
        if self.health is not None:  # NOT_SERVING while the current batch drains
            await self.health.health.shutdown()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.health is not None:
            await self.health.stop(1.0)
        await self.registry_channel.close()
        await mongo.close(self.client)

    async def _broker_ready(self) -> bool:
        return self.consumer.connected

    async def _snapshot_ready(self) -> bool:
        return self.snapshot.ready

    async def _ready_to_consume(self) -> bool:
        """A batch can be judged (the registry's centres) and stored (MongoDB)."""
        await mongo.ping(self.client)
        return self.snapshot.ready


def build_app(settings: BatchSettings) -> BatchApp:
    """Assemble the worker from settings; nothing connects until run()."""
    client = mongo.connect(settings, "sanad-batch")
    db = mongo.database(client, settings)
    transactions = SubmissionStore(client, db)
    channel = registry_channel(settings, settings.registry_target)
    # With the places and terms of the past: migrated history is filed and judged as of its day.
    snapshot = RegistrySnapshot(channel, settings.registry_outage_grace_s, keep_past=True)
    topology = Topology(settings.amqp_prefix)
    options = BatchOptions(
        prefetch=settings.batch_prefetch,
        max_messages=1,
        max_wait_s=0,
        broker_timeout_s=settings.amqp_timeout_s,
        drain_grace_s=settings.shutdown_grace_s,
    )

    async def reply(reply_to: str, body: bytes, correlation_id: str, message_type: str) -> None:
        # Answers go out on the consumer's own confirmed channel.
        await consumer.reply(reply_to, body, correlation_id, message_type)

    handler = BatchHandler(
        BatchStore(transactions, db),
        snapshot,
        reply,
        settings.civil_id_secret.get_secret_value().encode(),
        Limits(
            max_items=settings.batch_max_items,
            chunk=settings.batch_chunk,
            max_bytes=settings.batch_max_bytes,
            refusal_ttl_s=settings.batch_dead_letter_ttl_s,
        ),
        may_submit=authorizer(settings),
        may_migrate=migration_authorizer(settings),
        lookup=RegistryLookup(registry_pb2_grpc.RegistryServiceStub(channel)),
    )
    consumer = MicroBatchConsumer(
        settings.broker_url,
        topology,
        topology.batch_queue,
        handler,
        options,
        reasons=DEAD_LETTER_REASONS,
        on_failure=handler.failed,
    )
    return BatchApp(settings, client, channel, snapshot, transactions, consumer)
