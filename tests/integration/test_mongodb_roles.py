"""The Kubernetes manifest's MongoDB roles, loaded into a server that enforces them: every
service user is refused deleting audit events or dropping the audit log, and each deployable's
start-up index work runs under its own user.

SecantusDB enforces roles by action per database, not per collection (secantus/rbac.py matches a
privilege's `db` and ignores its `collection`), so this proves what no role grants anywhere in
the database (remove, dropCollection; for metrics, any write or index build) is refused, and that
each user has the actions its start-up needs; it cannot prove that an action granted on one
collection is refused on another: under SecantusDB any user granted `update` on some collection
may update (or find_one_and_delete) audit events. tests/unit/test_deploy_mongodb_roles.py holds
the roles to the code per collection; only a real mongod with authentication would prove both.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure

from sanad import records, rollups
from sanad.devstack import mongo_server
from sanad.retired_indexes import RETIRED
from sanad.security import audit
from services.metrics.store import MetricsStore
from services.registry.store import RegistryStore
from tests.conftest import discard
from tests.unit.test_deploy_kustomize import K8S, find, load_documents
from workers.ingest.store import IngestStore

pytestmark = pytest.mark.integration

PASSWORD = "5a" * 24
UNAUTHORIZED = 13
MANIFEST = find(
    load_documents(K8S / "components" / "mongodb" / "mongodbcommunity.yaml"),
    "MongoDBCommunity",
    "sanad-mongodb",
)["spec"]
USERS = [user["name"] for user in MANIFEST["users"]]
DATABASE = MANIFEST["security"]["roles"][0]["privileges"][0]["resource"]["db"]


def provision(port: int) -> None:
    """The roles and users as the operator creates them (its automation agent does the same)."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_server.url(port)) as client:
        for role in MANIFEST["security"]["roles"]:
            client[role["db"]].command(
                "createRole", role["role"], privileges=role["privileges"], roles=role["roles"]
            )
        for user in MANIFEST["users"]:
            roles = [{"role": r["name"], "db": r["db"]} for r in user["roles"]]
            client[user["db"]].command("createUser", user["name"], pwd=PASSWORD, roles=roles)
        # An event to refuse deleting, and the indexes earlier versions left for the ingest
        # worker and the registry to drop (written before authentication is on).
        db: Database[dict[str, Any]] = client[DATABASE]
        db[audit.COLLECTION].insert_one({"_id": "e1", "rpc": "x"})
        db[audit.COLLECTION].create_index([("time", -1)])
        db[records.COLLECTION].create_index([("center_id", 1), ("submit_time", -1)])
        db["registry_centers"].create_index([("governorate_code", 1), ("wilayat_code", 1)])


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A SecantusDB with the manifest's roles and users, restarted with --auth."""
    folder: Path = tmp_path_factory.mktemp("mongodb-roles")
    port = mongo_server.free_port()
    process = mongo_server.start(port, folder / "data", folder / "db.log")
    try:
        provision(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
    secured = subprocess.Popen(
        [
            *(sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port)),
            *("--storage-path", str(folder / "data"), "--standalone", "--auth"),
        ],
        env=mongo_server.server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(port)
        yield port
    finally:
        discard(secured)


def _wait_for(port: int) -> None:
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_server.url(port), serverSelectionTimeoutMS=30_000) as client:
        client.admin.command("ping")


def as_user(port: int, name: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        mongo_server.url(port), username=name, password=PASSWORD, authSource="admin"
    )


def refused(error: OperationFailure) -> bool:
    return error.code == UNAUTHORIZED


@pytest.mark.parametrize("name", USERS)
async def test_no_service_user_may_delete_audit_events_or_drop_the_audit_log(
    port: int, name: str
) -> None:
    client = as_user(port, name)
    events = client[DATABASE][audit.COLLECTION]
    try:
        # Not find_one_and_delete: SecantusDB asks findAndModify for `update` alone, where
        # mongod also asks `remove` (which no role grants).
        for attempt in (
            lambda: events.delete_one({"_id": "e1"}),
            lambda: events.delete_many({}),
            events.drop,
        ):
            with pytest.raises(OperationFailure) as error:
                await attempt()
            assert refused(error.value), error.value
        assert await events.find_one({"_id": "e1"}) is not None
    finally:
        await client.close()


async def test_the_metrics_user_may_not_write_at_all(port: int) -> None:
    client = as_user(port, "metrics")
    events = client[DATABASE][audit.COLLECTION]
    try:
        for attempt in (
            lambda: events.insert_one({"_id": "forged"}),
            lambda: events.update_one({"_id": "e1"}, {"$set": {"rpc": "forged"}}),
            lambda: events.find_one_and_delete({"_id": "e1"}),
        ):
            with pytest.raises(OperationFailure) as error:
                await attempt()
            assert refused(error.value)
    finally:
        await client.close()


# The collections whose retired indexes each deployable drops at start.
OWNED_RETIRED = {"registry": ["registry_centers"], "ingest": [records.COLLECTION, audit.COLLECTION]}


@pytest.mark.parametrize(
    ("name", "store"),
    [
        ("registry", RegistryStore),
        ("ingest", IngestStore),
    ],
)
async def test_each_deployable_builds_its_indexes_under_its_own_user(
    port: int, name: str, store: Any
) -> None:
    client = as_user(port, name)
    db = client[DATABASE]
    try:
        await store(client, db).ensure_indexes()
        for collection in OWNED_RETIRED.get(name, ()):
            left = {index["name"] async for index in await db[collection].list_indexes()}
            assert not left & set(RETIRED[collection]), f"{collection}: {left}"
    finally:
        await client.close()


async def test_metrics_finds_the_rollup_indexes_ingest_built_and_may_build_none(
    port: int,
) -> None:
    client = as_user(port, "metrics")
    rollups_of_metrics = client[DATABASE][rollups.COLLECTION]
    try:
        # The attack createIndex would allow: a TTL index deleting every rollup.
        with pytest.raises(OperationFailure) as error:
            await rollups_of_metrics.create_index([("day", 1)], expireAfterSeconds=0)
        assert refused(error.value)

        ingest = as_user(port, "ingest")
        try:
            await IngestStore(ingest, ingest[DATABASE]).ensure_indexes()
        finally:
            await ingest.close()
        await MetricsStore(client[DATABASE]).check_indexes()  # listIndexes, under its own user
    finally:
        await client.close()


async def test_the_batch_worker_builds_no_index_and_may_not(port: int) -> None:
    client = as_user(port, "batch")
    try:
        with pytest.raises(OperationFailure) as error:
            await IngestStore(client, client[DATABASE]).ensure_indexes()
        assert refused(error.value)
    finally:
        await client.close()
