"""The MongoDB users of the Kubernetes deployment are least-privilege, and the audit log is
append-only by MongoDB's own access control.

Each deployable's stores run every public method against a recording database
(tests/unit/mongodb_deployables.py, tests/unit/mongo_recorder.py), which notes the privilege
action each call needs on its collection; the deployable's custom role must grant exactly that,
nothing more, nothing less.
This proves the manifest matches what the code asks of MongoDB, by mongod's documented
command-to-action rules, on the paths these calls take; it does not prove that a MongoDB
enforces the roles as written (SecantusDB, our test server, matches privileges by database
only, never by collection), nor that the operator creates them: that takes a real mongod
with authentication.
"""

import pytest
from mongo_recorder import Access
from mongodb_deployables import DEPLOYABLES, accesses
from test_deploy_kustomize import K8S, OVERLAYS, Resource, find, render

from sanad import records, rollups
from sanad.security import audit

RENDERED = {overlay: render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
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
