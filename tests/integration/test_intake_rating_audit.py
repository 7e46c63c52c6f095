"""A RateTransaction whose claim wins stores its OK audit event in the claim's MongoDB transaction:
the rating is claimed exactly when its event is stored. Calls that claim nothing (a repeat, a
different value, a refusal) are audited by the security interceptor after the call, as before.
The database fails intake's own commands on purpose (configureFailPoint, scoped to its
connections by application name)."""

import asyncio
from typing import Any

import grpc
import pytest

from sanad.security.audit import COLLECTION
from sanad.v1 import intake_pb2
from tests.integration import test_intake_change_audit, test_intake_tracking
from tests.integration.conftest import Stack, eventually
from tests.integration.failpoints import events_of, heal
from tests.integration.test_intake_change_audit import WRITE_CONFLICT, fail
from tests.integration.test_intake_change_request_ids import ingest_depth, stored_open
from tests.integration.test_intake_tracking import code_of

pytestmark = pytest.mark.integration

# Their fixtures, shared rather than copied: this test's failpoint-enabled server, a view of it
# on connections the failpoints never match, and its transactions collection.
mongo_url = test_intake_change_audit.mongo_url
db = test_intake_change_audit.db
transactions = test_intake_tracking.transactions

RATE = "/sanad.v1.IntakeService/RateTransaction"


def rate(stack: Stack, tx: str, rating: int, call: str, timeout: float = 10) -> Any:
    return stack.intake.RateTransaction(
        intake_pb2.RateTransactionRequest(id=tx, rating=rating),
        metadata=(("x-request-id", call),),
        timeout=timeout,
    )


async def claim_of(db: Any, tx: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await db.intake_requests.find_one({"_id": f"rating\x1f{tx}"})
    return found


async def test_a_claimed_rating_stores_its_ok_event_with_the_claim(
    stack: Stack, transactions: Any, db: Any
) -> None:
    tx = await stored_open(transactions, "COMPLETED")
    await rate(stack, tx, 5, "rated")
    assert await events_of(db, "rated") == [("OK", {"id": tx})]
    (event,) = await db[COLLECTION].find({"request_id": "rated"}).to_list()
    assert (event["rpc"], event["subject"], event["recorded_by"]) == (RATE, "dev-admin", "intake")
    claim = await claim_of(db, tx)
    assert claim is not None
    assert claim["rating"] == 5
    assert await ingest_depth(stack) == 1


async def test_a_rating_whose_audit_event_the_database_refuses_is_not_claimed(
    stack: Stack, transactions: Any, db: Any
) -> None:
    tx = await stored_open(transactions, "COMPLETED")
    # The claim's insert goes through; the event's, in the same transaction, conflicts every
    # time, until the caller's deadline: neither is stored, nothing is sent.
    await fail(db, "insert", {"skip": 1}, errorCode=WRITE_CONFLICT)
    refused = rate(stack, tx, 4, "lost", timeout=2)
    assert await code_of(refused) == grpc.StatusCode.UNAVAILABLE
    await heal(db)

    assert await claim_of(db, tx) is None
    assert await ingest_depth(stack) == 0

    async def recorded() -> bool:
        return await events_of(db, "lost") != []

    await eventually(recorded, within_s=15)
    assert await events_of(db, "lost") == [("UNAVAILABLE", {"id": tx})]

    # Claimed nothing: another value may be given afterwards.
    await rate(stack, tx, 2, "after")
    assert await events_of(db, "after") == [("OK", {"id": tx})]
    claim = await claim_of(db, tx)
    assert claim is not None
    assert claim["rating"] == 2


async def test_concurrent_ratings_leave_one_event_per_call_and_one_claim(
    stack: Stack, transactions: Any, db: Any
) -> None:
    """One call wins the claim and stores its event with it; the others of the same value are
    answered OK and the interceptor writes theirs; a different value is ALREADY_EXISTS."""
    tx = await stored_open(transactions, "COMPLETED")
    calls = [f"concurrent-{n}" for n in range(6)]
    await asyncio.gather(*(rate(stack, tx, 5, call) for call in calls))
    for call in calls:
        assert await events_of(db, call) == [("OK", {"id": tx})]
    assert await db[COLLECTION].count_documents({"target.id": tx}) == len(calls)

    refused = rate(stack, tx, 3, "other-value")
    assert await code_of(refused) == grpc.StatusCode.ALREADY_EXISTS
    assert await events_of(db, "other-value") == [("ALREADY_EXISTS", {"id": tx})]
    claim = await claim_of(db, tx)
    assert claim is not None
    assert claim["rating"] == 5
