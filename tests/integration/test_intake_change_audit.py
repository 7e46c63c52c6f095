"""An accepted UpdateTransactionStatus or CancelTransaction and its OK audit event are stored in
one MongoDB transaction, with or without a request id: the change is accepted exactly when its
event is stored. Calls that accept nothing (refusals, failures, replays) are audited by the
security interceptor after the call, as before. The database fails intake's own commands on
purpose (configureFailPoint, scoped to its connections by application name)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sanad.security.audit import COLLECTION
from sanad.v1 import intake_pb2
from tests.integration import failpoints, test_intake_tracking
from tests.integration.conftest import Stack, eventually
from tests.integration.failpoints import events_of, heal
from tests.integration.test_intake_change_request_ids import ingest_depth, stored_open
from tests.integration.test_intake_tracking import S, code_of

pytestmark = pytest.mark.integration

transactions = test_intake_tracking.transactions  # its fixture, shared rather than copied

INTAKE_APP = "sanad-intake"  # intake's MongoDB application name (services/intake/app)
WRITE_CONFLICT = 112  # labelled TransientTransactionError: intake judges the change again
WRITE_CONCERN_FAILED = 64  # on a commit: intake cannot tell whether it committed
UPDATE = "/sanad.v1.IntakeService/UpdateTransactionStatus"
CANCEL = "/sanad.v1.IntakeService/CancelTransaction"


@pytest.fixture
def mongo_url(failpoint_database: str) -> str:
    """The stack of these tests uses this test's failpoint-enabled server."""
    return failpoint_database


@pytest.fixture
async def db(mongo_url: str, stack: Stack) -> AsyncIterator[Any]:
    """This test's view of the database, on connections the failpoints never match."""
    async with failpoints.own_view(mongo_url, stack.env["SANAD_MONGO_DATABASE"]) as view:
        yield view


async def fail(db: Any, command: str, mode: Any, **data: Any) -> None:
    """Fail intake's `command`s as `mode` says (alwaysOn, {times}, {skip}...)."""
    await failpoints.fail(db, INTAKE_APP, command, mode, **data)


async def sequence_of(db: Any, tx: str) -> int:
    """The sequence of the transaction's latest accepted status change (0 before the first)."""
    latest = await db.intake_requests.find_one({"_id": f"status\x1f{tx}"})
    return 0 if latest is None else int(latest["sequence"])


def update(stack: Stack, tx: str, status: int, request_id: str, call: str) -> Any:
    return stack.intake.UpdateTransactionStatus(
        intake_pb2.UpdateTransactionStatusRequest(
            id=tx, status=status, note="n", request_id=request_id
        ),
        metadata=(("x-request-id", call), ("x-sanad-identity", "rop-system")),
        timeout=10,
    )


def cancel(stack: Stack, tx: str, request_id: str, call: str) -> Any:
    return stack.intake.CancelTransaction(
        intake_pb2.CancelTransactionRequest(id=tx, reason="withdrawn", request_id=request_id),
        metadata=(("x-request-id", call),),
        timeout=10,
    )


def update_target(tx: str, request_id: str, status: str = "COMPLETED") -> dict[str, str]:
    target = {"id": tx, "status": f"TRANSACTION_STATUS_{status}", "request_id": request_id}
    return {k: v for k, v in target.items() if v}


def cancel_target(tx: str, request_id: str) -> dict[str, str]:
    return {k: v for k, v in {"id": tx, "request_id": request_id}.items() if v}


@pytest.mark.parametrize("request_id", ["", "rop-1"])
@pytest.mark.parametrize("rpc", [UPDATE, CANCEL])
async def test_an_accepted_change_leaves_one_ok_event_as_before(
    stack: Stack, transactions: Any, db: Any, rpc: str, request_id: str
) -> None:
    tx = await stored_open(transactions)
    if rpc == UPDATE:
        await update(stack, tx, S.TRANSACTION_STATUS_COMPLETED, request_id, "accepted")
        target = update_target(tx, request_id)
    else:
        await cancel(stack, tx, request_id, "accepted")
        target = cancel_target(tx, request_id)
    assert await events_of(db, "accepted") == [("OK", target)]
    (event,) = await db[COLLECTION].find({"request_id": "accepted"}).to_list()
    assert (event["rpc"], event["subject"], event["role"]) == (rpc, "dev-admin", "admin")
    assert event["recorded_by"] == "intake"
    assert await sequence_of(db, tx) == 1
    assert await ingest_depth(stack) == 1


@pytest.mark.parametrize(
    "case",
    [
        # Without a request id the change's transaction holds the compare-and-set (an update:
        # the transaction has an earlier change) and the event's insert, which fails.
        (UPDATE, "", "alwaysOn"),
        # Under one it inserts the answer's record, then the event: the first try's event
        # insert fails, and every insert after it.
        (CANCEL, "centre-1", {"skip": 1}),
    ],
    ids=["update-without-request-id", "cancel-with-request-id"],
)
async def test_a_change_whose_audit_event_the_database_refuses_is_not_accepted(
    stack: Stack, transactions: Any, db: Any, case: tuple[str, str, Any]
) -> None:
    rpc, request_id, mode = case
    tx = await stored_open(transactions)
    await update(stack, tx, S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "", "earlier")
    await fail(db, "insert", mode, errorCode=WRITE_CONFLICT)
    if rpc == UPDATE:
        refused = update(stack, tx, S.TRANSACTION_STATUS_IN_PROGRESS, request_id, "lost")
        target = update_target(tx, request_id, "IN_PROGRESS")
    else:
        refused = cancel(stack, tx, request_id, "lost")
        target = cancel_target(tx, request_id)
    assert await code_of(refused) == grpc.StatusCode.UNAVAILABLE
    await heal(db)

    assert await sequence_of(db, tx) == 1  # the earlier change is still the latest
    assert await ingest_depth(stack) == 1  # the earlier change's message only
    assert await db.intake_requests.count_documents({"_id": {"$regex": "centre-1"}}) == 0

    # The refusal's event waited in intake while inserts failed; it is the only one.
    async def recorded() -> bool:
        return await events_of(db, "lost") != []

    await eventually(recorded, within_s=15)
    assert await events_of(db, "lost") == [("UNAVAILABLE", target)]


async def test_a_change_judged_again_after_its_transaction_conflicted_stores_its_event_once(
    stack: Stack, transactions: Any, db: Any
) -> None:
    tx = await stored_open(transactions)
    await update(stack, tx, S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "", "earlier")
    # The first try's event insert conflicts; intake judges the change again and accepts it.
    await fail(db, "insert", {"times": 1}, errorCode=WRITE_CONFLICT)
    await update(stack, tx, S.TRANSACTION_STATUS_IN_PROGRESS, "", "again")
    await heal(db)

    assert await events_of(db, "again") == [("OK", update_target(tx, "", "IN_PROGRESS"))]
    assert await sequence_of(db, tx) == 2
    assert await ingest_depth(stack) == 2


async def test_a_change_whose_commit_answer_was_lost_is_stored_with_its_ok_event(
    stack: Stack, transactions: Any, db: Any
) -> None:
    """The commit is applied but answered with a write-concern failure: the caller gets
    UNAVAILABLE (and its event); the change and its OK event are both stored, and a retry
    under the request id is answered from the change's record."""
    tx = await stored_open(transactions)
    await fail(
        db,
        "commitTransaction",
        {"times": 1},
        writeConcernError={"code": WRITE_CONCERN_FAILED, "errmsg": "waiting for replication"},
    )
    first = update(stack, tx, S.TRANSACTION_STATUS_COMPLETED, "rop-1", "unanswered")
    assert await code_of(first) == grpc.StatusCode.UNAVAILABLE
    await heal(db)

    target = update_target(tx, "rop-1")
    outcomes = sorted(outcome for outcome, _ in await events_of(db, "unanswered"))
    assert outcomes == ["OK", "UNAVAILABLE"]  # the OK one stored with the change
    assert all(found == target for _, found in await events_of(db, "unanswered"))
    assert await sequence_of(db, tx) == 1
    await update(stack, tx, S.TRANSACTION_STATUS_COMPLETED, "rop-1", "retry")
    assert await events_of(db, "retry") == [("OK", target)]  # the interceptor's, as before
    assert await sequence_of(db, tx) == 1


async def test_concurrent_calls_of_one_request_id_leave_one_ok_event_each(
    stack: Stack, transactions: Any, db: Any
) -> None:
    """One call accepts the change and stores its event with it; the others are answered from
    its record, and the interceptor writes theirs, as before: one event per call."""
    tx = await stored_open(transactions)
    calls = [f"concurrent-{n}" for n in range(6)]
    await asyncio.gather(
        *(update(stack, tx, S.TRANSACTION_STATUS_COMPLETED, "rop-1", call) for call in calls)
    )
    target = update_target(tx, "rop-1")
    for call in calls:
        assert await events_of(db, call) == [("OK", target)]
    assert await db[COLLECTION].count_documents({"target.id": tx}) == len(calls)
    assert await sequence_of(db, tx) == 1
    assert await ingest_depth(stack) == 1


async def test_a_refused_change_is_audited_by_the_interceptor_only(
    stack: Stack, transactions: Any, db: Any
) -> None:
    tx = await stored_open(transactions, "COMPLETED")
    refused = update(stack, tx, S.TRANSACTION_STATUS_IN_PROGRESS, "rop-1", "refused")
    assert await code_of(refused) == grpc.StatusCode.FAILED_PRECONDITION
    target = update_target(tx, "rop-1", "IN_PROGRESS")
    assert await events_of(db, "refused") == [("FAILED_PRECONDITION", target)]
    assert await sequence_of(db, tx) == 0
    assert await ingest_depth(stack) == 0
