"""The registry's composition root: wires the store, the rules and the gRPC server."""

from dataclasses import dataclass, field

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern

from sanad import mongo
from sanad.rpc.server import (
    REGISTRY_REQUEST_BYTES,
    Registration,
    RunningServer,
    read_own_files,
    start_server,
)
from sanad.security import audit_service
from sanad.security.audit_listing import AuditListing
from sanad.security.audit_log import AuditLog
from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.registry.catalog import CatalogOperations
from services.registry.centers import CenterOperations
from services.registry.operations import ChangeFeed
from services.registry.reference import ReferenceData
from services.registry.servicer import RegistryServicer
from services.registry.settings import RegistrySettings
from services.registry.store import RegistryStore

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name


@dataclass
class RegistryApp:
    """Everything the registry process runs; start() binds, stop() drains."""

    settings: RegistrySettings
    client: AsyncMongoClient[mongo.Document]
    store: RegistryStore
    centers: CenterOperations
    catalog: CatalogOperations
    feed: ChangeFeed
    server: RunningServer | None = None
    indexes: mongo.Indexes = field(init=False)

    def __post_init__(self) -> None:
        self.indexes = mongo.Indexes(self.client, self.store.ensure_indexes)

    async def start(self, port: int) -> int:
        """Serve on port (0 for a free one) and return the bound port."""
        # Indexes before the first call: building one while a registry transaction is open on
        # the same collection blocks that transaction (seen as a 10 s stall on a fresh database).
        files = read_own_files(self.settings)  # a bad file is told before the wait
        await self.indexes.build_at_start(self.settings.mongo_timeout_ms / 1000)
        servicer = RegistryServicer(
            self.centers, self.catalog, self.settings.grpc_max_message_bytes
        )
        db = mongo.database(self.client, self.settings)
        audit_log = AuditLog(db)
        auditor = audit_service.AuditServicer(AuditListing(db))
        self.server = await start_server(
            self.settings,
            port,
            [
                Registration(
                    SERVICE_NAME,
                    lambda s: registry_pb2_grpc.add_RegistryServiceServicer_to_server(servicer, s),
                ),
                Registration(
                    audit_service.SERVICE_NAME, lambda s: audit_service.add_to_server(auditor, s)
                ),
            ],
            checks={"mongodb": self.indexes.ready},
            audit_log=audit_log,
            name="registry",
            files=files,
            max_request_bytes=REGISTRY_REQUEST_BYTES,
        )
        return self.server.port

    async def stop(self) -> None:
        """NOT_SERVING, drain in-flight calls, close the database client. Watch streams never
        end by themselves: they end as the drain begins, and their subscribers resume from
        their last revision elsewhere, instead of holding the drain for its whole grace."""
        if self.server is not None:
            await self.server.stop(
                self.settings.shutdown_grace_s,
                self.settings.shutdown_notice_s,
                draining=self.feed.close,
            )
        await mongo.close(self.client)


def registry_database(
    client: AsyncMongoClient[mongo.Document], settings: RegistrySettings
) -> AsyncDatabase[mongo.Document]:
    """The database as the registry's store reads it: at read concern "majority", as it writes
    at w=majority. A watch stream then never sends a revision a replica-set failover rolls back
    (and later gives to another change), nor does a read hand out such a revision to send back
    as expected_revision. Transactions keep their own read concern."""
    return mongo.database(client, settings).with_options(read_concern=ReadConcern("majority"))


def build_app(settings: RegistrySettings) -> RegistryApp:
    """Assemble the registry from settings; nothing connects until start()."""
    client = mongo.connect(settings, "sanad-registry")
    store = RegistryStore(
        client, registry_database(client, settings), settings.mongo_timeout_ms / 1000
    )
    reference = ReferenceData.load()
    feed = ChangeFeed(poll_s=settings.watch_poll_s)
    centers = CenterOperations(store, reference, feed)
    catalog = CatalogOperations(store, reference, feed, settings.auth_licensing_agency)
    return RegistryApp(settings, client, store, centers, catalog, feed)
