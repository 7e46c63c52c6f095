"""A registry change and its OK audit event are stored in one MongoDB transaction: both or
neither, once each however the transaction is retried. The database fails the registry's own
commands on purpose (configureFailPoint, scoped to its connections by application name)."""

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sanad.v1 import registry_pb2 as pb
from tests.integration import failpoints
from tests.integration.conftest import eventually
from tests.integration.failpoints import events_of, heal
from tests.integration.registry_served import Registry, refused, serve_registry

pytestmark = pytest.mark.integration

REGISTRY_APP = "sanad-registry"  # the registry's MongoDB application name (services/registry/app)
WRITE_CONFLICT = 112  # labelled TransientTransactionError: PyMongo runs the transaction again
NO_SUCH_TRANSACTION = 251  # the same label, answered to a commit
WRITE_CONCERN_FAILED = 64  # on a commit: PyMongo cannot tell whether it committed, and retries


@pytest.fixture
def mongo_url(failpoint_database: str) -> str:
    """The registry of these tests uses this test's failpoint-enabled server."""
    return failpoint_database


@pytest.fixture
async def registry(mongo_url: str, database_name: str) -> AsyncIterator[Registry]:
    """The registry with a short database timeout: a transaction failing for good gives up
    (UNAVAILABLE) within 1.5 s."""
    async with serve_registry(mongo_url, database_name, mongo_timeout_ms=1500) as served:
        yield served


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[Any]:
    """This test's view of the database, on connections the failpoints never match."""
    async with failpoints.own_view(mongo_url, database_name) as view:
        yield view


async def fail(db: Any, command: str, mode: Any, **data: Any) -> None:
    """Fail the registry's `command`s as `mode` says (alwaysOn, {times}, {skip}...)."""
    await failpoints.fail(db, REGISTRY_APP, command, mode, **data)


def as_request(request_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-request-id", request_id),)


def registration(licence: str) -> pb.RegisterCenterRequest:
    return pb.RegisterCenterRequest(
        center=pb.Center(
            name_ar="مركز أبراج الشرق",
            name_en="Abraj Centre",
            owner_establishment="مؤسسة أبراج الشرق",
            governorate_code="DA",
            wilayat_code="DA-NIZ",
            omani_staff=3,
            total_staff=4,
            licence=pb.Licence(number=licence),
        )
    )


async def test_a_change_whose_audit_event_the_database_refuses_is_not_stored_either(
    registry: Registry, db: Any
) -> None:
    licence = f"LIC-{time.time_ns()}"
    # The registration inserts the centre, then its change-log entry, then its audit event:
    # every insert after the first two fails, so each attempt fails at the event or before it.
    await fail(db, "insert", {"skip": 2}, errorCode=WRITE_CONFLICT)
    await refused(
        registry.stub.RegisterCenter(registration(licence), metadata=as_request("lost-event")),
        grpc.StatusCode.UNAVAILABLE,
    )
    await heal(db)

    assert await db.registry_centers.find_one({"licence.number": licence}) is None
    assert await db.registry_changes.count_documents({}) == 0

    # The refusal's event waited in the registry while inserts failed; it is the only one.
    async def recorded() -> bool:
        return await events_of(db, "lost-event") != []

    await eventually(recorded, within_s=15)
    assert await events_of(db, "lost-event") == [
        ("UNAVAILABLE", {"center.licence.number": licence})
    ]


async def test_a_change_whose_commit_fails_leaves_neither_the_change_nor_an_ok_event(
    registry: Registry, db: Any
) -> None:
    center = await registry.register()
    await fail(db, "commitTransaction", "alwaysOn", errorCode=NO_SUCH_TRANSACTION)
    await refused(
        registry.stub.TransitionLicence(
            pb.TransitionLicenceRequest(
                center_id=center.id, action=pb.LICENCE_ACTION_APPROVE, reason="complete"
            ),
            metadata=as_request("aborted"),
        ),
        grpc.StatusCode.UNAVAILABLE,
    )
    await heal(db)

    stored = await registry.stub.GetCenter(pb.GetCenterRequest(id=center.id))
    assert (stored.center.revision, stored.center.licence.status) == (
        center.revision,
        pb.LICENCE_STATUS_APPLIED,
    )
    assert await db.registry_changes.count_documents({}) == 1  # the registration's
    target = {"center_id": center.id, "action": "LICENCE_ACTION_APPROVE"}
    assert await events_of(db, "aborted") == [("UNAVAILABLE", target)]


async def test_a_transaction_run_again_stores_its_change_and_event_once(
    registry: Registry, db: Any
) -> None:
    licence = f"LIC-{time.time_ns()}"
    # The first attempt's event insert conflicts; PyMongo runs the whole transaction again.
    await fail(db, "insert", {"skip": 2, "times": 1}, errorCode=WRITE_CONFLICT)
    reply = await registry.stub.RegisterCenter(
        registration(licence), metadata=as_request("run-again")
    )
    await heal(db)

    center_id = reply.center.id
    assert await db.registry_centers.count_documents({"licence.number": licence}) == 1
    assert await db.registry_changes.count_documents({"key": center_id}) == 1
    target = {"center.licence.number": licence, "center.id": center_id}
    assert await events_of(db, "run-again") == [("OK", target)]


async def test_a_commit_retried_after_its_answer_was_lost_stores_the_event_once(
    registry: Registry, db: Any
) -> None:
    center = await registry.register()
    # The commit is applied but its answer is a write-concern failure: PyMongo cannot tell
    # whether it committed and sends the commit again.
    await fail(
        db,
        "commitTransaction",
        {"times": 1},
        writeConcernError={"code": WRITE_CONCERN_FAILED, "errmsg": "waiting for replication"},
    )
    reply = await registry.stub.TransitionLicence(
        pb.TransitionLicenceRequest(
            center_id=center.id, action=pb.LICENCE_ACTION_APPROVE, reason="complete"
        ),
        metadata=as_request("commit-again"),
    )
    await heal(db)

    assert reply.center.revision == center.revision + 1
    assert await db.registry_changes.count_documents({"key": center.id}) == 2
    target = {"center_id": center.id, "action": "LICENCE_ACTION_APPROVE"}
    assert await events_of(db, "commit-again") == [("OK", target)]


async def test_a_change_refused_inside_its_transaction_is_audited_as_before(
    registry: Registry, db: Any
) -> None:
    """The unique licence number refuses the second registration in the transaction, after
    its event was taken: the interceptor records the refusal, naming no centre."""
    licence = f"LIC-{time.time_ns()}"
    await registry.stub.RegisterCenter(registration(licence), metadata=as_request("first"))
    await refused(
        registry.stub.RegisterCenter(registration(licence), metadata=as_request("second")),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert await events_of(db, "second") == [("ALREADY_EXISTS", {"center.licence.number": licence})]
    assert await db.registry_centers.count_documents({"licence.number": licence}) == 1
