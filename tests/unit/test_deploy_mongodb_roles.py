"""The MongoDB users of the Kubernetes deployment are least-privilege, and the audit log is
append-only by MongoDB's own access control.

Each deployable's stores run every public method against a recording database
(tests/unit/mongo_recorder.py), which notes the privilege action each call needs on its
collection; the deployable's custom role must grant exactly that, nothing more, nothing less.
This proves the manifest matches what the code asks of MongoDB, by mongod's documented
command-to-action rules, on the paths these calls take; it does not prove that a MongoDB
enforces the roles as written (SecantusDB, our test server, matches privileges by database
only, never by collection), nor that the operator creates them: that takes a real mongod
with authentication.
"""

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from mongo_recorder import Access, RecordingClient, RecordingDatabase
from test_deploy_kustomize import K8S, OVERLAYS, Resource, find, render

from sanad import records, rollups
from sanad.domain.transactions import Status
from sanad.mongo import IndexesMissing
from sanad.security import audit, audit_offer
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
from services.registry.paging import PageRequest
from services.registry.store import RegistryStore
from tests.unit.fakes import stored_transaction
from workers.batch import app as batch_app
from workers.batch.store import BatchStore
from workers.ingest import app as ingest_app
from workers.ingest.changes import StatusChange
from workers.ingest.store import IngestStore

RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
NOW = datetime(2026, 5, 1, 9, tzinfo=UTC)
# What a role may ever do to the audit trail: read it, append to it, and manage its indexes.
AUDIT_ACTIONS = {"find", "insert", "createIndex", "listIndexes", "dropIndex"}


def granted(resources: list[Resource]) -> dict[str, set[Access]]:
    """Each user's (collection, action) grants, through its custom roles."""
    mongo = find(resources, "MongoDBCommunity", "sanad-mongodb")
    roles = {(r["role"], r["db"]): r for r in mongo["spec"]["security"].get("roles", [])}
    grants: dict[str, set[Access]] = {}
    for user in mongo["spec"]["users"]:
        bound = [(r["name"], r["db"]) for r in user["roles"]]
        assert set(bound) <= set(roles), f"{user['name']} holds a role not defined here: {bound}"
        grants[user["name"]] = {
            (privilege["resource"]["collection"], action)
            for key in bound
            for privilege in roles[key]["privileges"]
            for action in privilege["actions"]
        }
    return grants


# --- what each deployable does ---------------------------------------------------------------


class Exercised:
    """A store whose public methods are noted as they are called, so a driver that misses one
    (a method added later) fails the test instead of leaving its access unchecked."""

    def __init__(self, store: object, called: set[str]) -> None:
        self._store, self._called = store, called

    def __getattr__(self, name: str) -> Any:
        self._called.add(f"{type(self._store).__name__}.{name}")
        return getattr(self._store, name)


def public_methods(*classes: type) -> set[str]:
    return {
        f"{cls.__name__}.{name}"
        for cls in classes
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
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
    await audits(db, registry_app, called)


async def intake(client: Any, db: Any, called: set[str]) -> None:
    requests = Exercised(RequestStore(db), called)
    await requests.claim_request("k", "T1", "f", NOW)
    await requests.find_request("k")
    await requests.claim_rating("T1", 5, NOW, "a")
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
    store = Exercised(IngestStore(client, db), called)
    await store.ensure_indexes()
    await store.record_submissions([submitted("T0")])
    db[records.COLLECTION].documents = [submitted()]  # stored, so the change below applies
    change = StatusChange("T1", "c1", Status.IN_PROGRESS, NOW, "ROP", "")
    carried = {"T1": document_of(event())}
    await store.record([submitted()], [change], carried)
    await store.find_by_ids(["T1"])
    await store.in_transaction("noop", lambda session: _nothing())
    await audits(db, ingest_app, called)


async def batch(client: Any, db: Any, called: set[str]) -> None:
    # As workers/batch/app.py builds it: the ingest store for items, never its ensure_indexes.
    store = Exercised(BatchStore(IngestStore(client, db), db), called)
    db["batch_results"].documents = [{"_id": "B1", "result": b"r"}]
    await store.claim("B1", "u", "C1", NOW, "f")
    await store.stored_ids(["T1"])
    await store.store_chunk([submitted()])
    await store.save_result("B1", b"r", 1, 0, document_of(event()))
    await store.record_refusal(document_of(event()), redelivered=True)
    await store.replace_result("B1", b"r", b"s", 1, 0)
    await store.saved_result("B1")
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


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_user_holds_a_built_in_role_only_its_own_custom_one(overlay: str) -> None:
    mongo = find(RENDERED[overlay], "MongoDBCommunity", "sanad-mongodb")
    custom = {(r["role"], r["db"]) for r in mongo["spec"]["security"]["roles"]}

    for user in mongo["spec"]["users"]:
        names = {role["name"] for role in user["roles"]}
        assert not names & {"readWrite", "dbOwner", "dbAdmin", "root", "readWriteAnyDatabase"}
        assert [(r["name"], r["db"]) for r in user["roles"]] == [(f"sanad-{user['name']}", "admin")]
        assert {(r["name"], r["db"]) for r in user["roles"]} <= custom


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_privilege_names_one_collection_of_the_sanad_database(overlay: str) -> None:
    database = find(RENDERED[overlay], "ConfigMap", "sanad-common")["data"]["SANAD_MONGO_DATABASE"]
    mongo = find(RENDERED[overlay], "MongoDBCommunity", "sanad-mongodb")

    for role in mongo["spec"]["security"]["roles"]:
        assert role.get("roles", []) == [], f"{role['role']} inherits another role"
        for privilege in role["privileges"]:
            # An empty collection means every collection; cluster and anyResource reach further.
            assert set(privilege["resource"]) == {"db", "collection"}, role["role"]
            assert privilege["resource"]["db"] == database, role["role"]
            assert privilege["resource"]["collection"], f"{role['role']} grants a whole database"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_user_can_update_delete_or_drop_audit_events(overlay: str) -> None:
    for user, grants in granted(RENDERED[overlay]).items():
        on_audit = {action for collection, action in grants if collection == audit.COLLECTION}
        assert on_audit <= AUDIT_ACTIONS, f"{user} may {sorted(on_audit - AUDIT_ACTIONS)} events"
        assert not on_audit & {"update", "remove", "dropCollection", "renameCollectionSameDB"}


@pytest.mark.parametrize("name", DEPLOYABLES)
async def test_each_user_is_granted_exactly_what_its_deployable_does(name: str) -> None:
    does = await accesses(name)

    for overlay in OVERLAYS:
        grants = granted(RENDERED[overlay])[name]
        assert sorted(does - grants) == [], f"{overlay}: {name} is refused these"
        assert sorted(grants - does) == [], f"{overlay}: {name} is granted more than it does"


async def test_the_deployables_append_to_the_audit_log_and_never_rewrite_it() -> None:
    """The recorder sees what each deployable does to audit_log, so a future update or delete of
    an event fails here (and in the exact-grant test above) before it reaches the roles."""
    does = {name: await accesses(name) for name in DEPLOYABLES}
    on_audit = {
        name: {action for collection, action in found if collection == audit.COLLECTION}
        for name, found in does.items()
    }

    assert all(actions <= AUDIT_ACTIONS for actions in on_audit.values()), on_audit
    assert {name for name, actions in on_audit.items() if "insert" in actions} == {
        "registry",
        "intake",
        "ingest",
        "batch",
    }
    assert not any(action == "remove" for found in does.values() for _, action in found)


async def test_metrics_only_reads_the_rollups_and_lists_their_indexes() -> None:
    """Metrics checks the rollup indexes the ingest worker builds: with createIndex, a stolen
    metrics credential could build a TTL index that deletes every rollup."""
    rollup_collections = {collection for collection, _ in rollups.INDEXES}
    expected = {(c, action) for c in rollup_collections for action in ("find", "listIndexes")}

    assert await accesses("metrics") == expected
    for overlay in OVERLAYS:
        assert granted(RENDERED[overlay])["metrics"] == expected, overlay


async def test_every_collection_the_code_names_is_granted_to_whoever_uses_it() -> None:
    """The collection-name constants of the code (not a list kept here) are each used by some
    deployable, and granted to each one that does."""
    constants = {records.COLLECTION, audit.COLLECTION, *(c for c, _ in rollups.INDEXES)}
    users = granted(RENDERED["prod"])
    used: dict[str, set[str]] = {}
    for name in DEPLOYABLES:
        for collection, _ in await accesses(name):
            used.setdefault(collection, set()).add(name)

    assert constants <= set(used)
    for collection, names in used.items():
        for name in names:
            assert any(c == collection for c, _ in users[name]), f"{name} lacks {collection}"
