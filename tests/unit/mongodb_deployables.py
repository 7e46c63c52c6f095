"""What each deployable does to MongoDB, as (collection, action): its stores' every public
method run against a recording database (tests/unit/mongo_recorder.py), as its composition root
uses them. tests/unit/test_deploy_mongodb_roles.py holds the deployment's roles to it."""

import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from mongo_recorder import Access, RecordingClient, RecordingDatabase

from sanad import records
from sanad.domain.transactions import Status
from sanad.mongo import IndexesMissing
from sanad.paging import PageRequest
from sanad.security import audit_offer
from sanad.security.audit import AuditEvent, document_of
from sanad.security.audit_listing import AuditListing, AuditQuery
from sanad.security.audit_log import AuditLog
from services.intake import app as intake_app
from services.intake.listing import ListQuery
from services.intake.request_store import RequestStore
from services.intake.store import TransactionStore
from services.metrics import app as metrics_app
from services.metrics.store import MetricsStore
from services.registry import app as registry_app
from services.registry.domain import CatalogService, Center, Licence
from services.registry.listing import CenterFilter, ServiceFilter
from services.registry.store import RegistryStore
from tests.unit.fakes import stored_transaction
from workers.batch import app as batch_app
from workers.batch.store import BatchStore, record_key
from workers.ingest import app as ingest_app
from workers.ingest.changes import StatusChange
from workers.ingest.store import IngestStore
from workers.storage.submissions import SubmissionStore

NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)


class Exercised:
    """A store whose public methods are noted as they are called, so a driver that misses one
    (a method added later) fails the test instead of leaving its access unchecked."""

    def __init__(self, store: object, called: set[str]) -> None:
        self._store, self._called = store, called

    def __getattr__(self, name: str) -> Any:
        self._called.add(f"{type(self._store).__name__}.{name}")
        return getattr(self._store, name)


def public_methods(*classes: type) -> set[str]:
    """Each class's public coroutine methods, its inherited ones too (IngestStore's from
    SubmissionStore), named as Exercised notes them: by the class of the store called."""
    return {
        f"{cls.__name__}.{name}"
        for cls in classes
        for name, _ in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def submitted(transaction_id: str = "T1") -> dict[str, Any]:
    return stored_transaction(transaction_id, NOW)


def event(rpc: str = "x") -> AuditEvent:
    return AuditEvent(NOW, "s", "admin", "", "", rpc, {"correlation_id": "b"}, "OK", "r", "t")


async def audits(db: Any, app: ModuleType, called: set[str]) -> None:
    """The audit trail as the deployable's composition root uses it: recorded by its security
    interceptor when it hands start_server an AuditLog, listed through an AuditListing when it
    serves AuditService."""
    source = inspect.getsource(app)
    if "AuditLog(" in source:
        log = Exercised(AuditLog(db), called)
        await log.record(event())
        await log.drain()
    if "audit_service.add_to_server" in source:
        listing = Exercised(AuditListing(db), called)
        await listing.find(AuditQuery())


async def registry(client: Any, db: Any, called: set[str]) -> None:
    store = Exercised(RegistryStore(client, db), called)
    await store.ensure_indexes()
    center = Center("C1", "ع", "c", "o", "DA", "DA-NIZ", 1, 1, Licence("L1"))
    service = CatalogService("S", "ROP", "ع", "s", 1, 1)
    for new in (True, False):
        await store.save_center(center, new=new)
        await store.save_service(service, new=new)
    await store.get_center("C1")
    await store.get_service("S")
    await store.list_centers(CenterFilter(), NOW, PageRequest(10, "C0"))
    await store.list_services(ServiceFilter(), PageRequest(10))
    await store.existing_service_codes(["S"])
    await store.center_changes_after(0)
    await store.service_changes_after(0)
    await store.head_revision()
    await store.change_time("center", 1)
    await audits(db, registry_app, called)


async def intake(client: Any, db: Any, called: set[str]) -> None:
    requests = Exercised(RequestStore(db), called)
    await requests.claim_request("k", "T1", "f", NOW)
    await requests.find_request("k")
    await requests.claim_rating("T1", 5, NOW, "a")
    await requests.find_rating("T1")
    await requests.latest_change("T1")
    for previous in (0, 1):
        await requests.accept_change("T1", previous, {"sequence": previous + 1})
        await requests.accept_change(
            "T1", previous, {"sequence": previous + 1}, answer={"_id": "a"}
        )
        # An audited call's OK event, carried in the transaction that accepts its change.
        audit_offer.offer(lambda results: event("/sanad.v1.IntakeService/CancelTransaction"))
        await requests.accept_change(
            "T1", previous, {"sequence": previous + 1}, event=requests.carried_event()
        )
    await requests.find_change_request("a")
    await requests.confirm_change("T1", 1)
    # The notes of changes about to be accepted, and the sweep of those left unsent.
    await requests.note_unsent("status T1", 2)
    await requests.note_sent("status T1", 2)
    await requests.left_unsent(NOW, 10)
    await requests.forget_unsent("status T1", NOW)
    transactions = Exercised(TransactionStore(db), called)
    await transactions.get_transaction("T1")
    await transactions.list_transactions(ListQuery("C1", submitted_after=NOW, after=(NOW, "T0")))
    await audits(db, intake_app, called)


async def metrics(client: Any, db: Any, called: set[str]) -> None:
    store = Exercised(MetricsStore(db), called)
    # It lists the rollups' indexes (the recording database has none) and builds none: no
    # createIndex, so the exact-grant test refuses one, should a build come back.
    with pytest.raises(IndexesMissing):
        await store.check_indexes()
    await store.sums_by("center_id", "C1", ("2024-12-30", "2026-02-03"), "center_id")
    await store.year_by_place(2025, governorate_code="DA")
    await audits(db, metrics_app, called)


async def ingest(client: Any, db: Any, called: set[str]) -> None:
    raw = IngestStore(client, db)
    store = Exercised(raw, called)
    await store.ensure_indexes()
    await store.record_submissions([submitted("T0")])
    db[records.COLLECTION].documents = [submitted()]  # stored, so the change below applies
    change = StatusChange("T1", "c1", Status.IN_PROGRESS, NOW, "ROP", "")
    carried = {"T1": document_of(event())}
    await store.record([submitted()], [change], carried)
    # A carried event of a transaction stored before (a replay's message stored it): read
    # whether it is written, then inserted; the trail is never updated.
    raw._stored_id_met_at = time.monotonic()  # as after an insert met a stored id
    await store.record([submitted()], [], carried)
    await store.find_by_ids(["T1"])
    await store.recent_places("2026-09-01")
    await store.in_transaction("noop", lambda session: _nothing())
    await audits(db, ingest_app, called)


async def batch(client: Any, db: Any, called: set[str]) -> None:
    # As workers/batch/app.py builds it: the submission store for items, which builds no index.
    store = Exercised(BatchStore(SubmissionStore(client, db), db), called)
    # First seen: no record under the batch id (from before records were per submitter), so
    # claimed by an upsert; then answered.
    await store.claim("B1", "u", "C1", NOW, "f")
    key = record_key("B1", "u")
    db["batch_results"].documents = [{"_id": key, "result": b"r"}]
    await store.stored_ids(["T1"])
    await store.migrated_ids(["T1"])
    await store.request_records(["K1"])
    await store.store_chunk([submitted()], [{"_id": "K1", "transaction_id": "T1"}])
    await store.save_result(key, b"r", 1, 0, document_of(event()))
    await store.record_refusal(document_of(event()), redelivered=True)
    await store.replace_result(key, b"r", b"s", 1, 0)
    await store.saved_result(key)
    await audits(db, batch_app, called)


async def _nothing() -> None:
    return None


Driver = Callable[[Any, Any, set[str]], Awaitable[None]]
# Each deployable (its MongoDB user's name): how it reaches MongoDB, and the store classes whose
# every public method it may call.
DEPLOYABLES: dict[str, tuple[Driver, tuple[type, ...]]] = {
    "registry": (registry, (RegistryStore,)),
    "intake": (intake, (RequestStore, TransactionStore)),
    "metrics": (metrics, (MetricsStore,)),
    "ingest": (ingest, (IngestStore,)),
    "batch": (batch, (BatchStore,)),
}


async def accesses(name: str) -> set[Access]:
    """What the deployable does to MongoDB, as (collection, action)."""
    drive, stores = DEPLOYABLES[name]
    client = RecordingClient()
    db, called = RecordingDatabase(client), set[str]()
    await drive(client, db, called)
    missed = public_methods(*stores) - called
    assert not missed, f"the {name} driver does not call {sorted(missed)}"
    return db.accesses
