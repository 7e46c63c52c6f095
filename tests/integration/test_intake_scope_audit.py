"""A transaction outside the caller's scope is answered NOT_FOUND, exactly as an unknown id is,
and the audit trail tells the two apart: the refusal's event notes that the transaction was
outside the caller's scope (a desk probing another centre's ids is not a run of typos)."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.devstack.certs import EXAMPLE_CENTER
from sanad.domain.ids import new_id
from sanad.security.audit import COLLECTION, NOTE_KEY
from sanad.v1 import intake_pb2
from services.intake.reading import OUTSIDE_SCOPE
from tests.integration import test_intake_center_id_scope
from tests.integration.test_intake_tracking import T0, document

pytestmark = pytest.mark.integration

desk = test_intake_center_id_scope.desk  # its fixture, shared rather than copied
CANCEL = "/sanad.v1.IntakeService/CancelTransaction"
RATE = "/sanad.v1.IntakeService/RateTransaction"


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[database_name]
    await client.close()


async def refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code(), refused.value.details() or ""


async def events(db: Any, rpc: str, tx: str) -> list[dict[str, Any]]:
    found = db[COLLECTION].find({"rpc": rpc, "target.id": tx, "subject": "example-centre-desk"})
    return [event["target"] async for event in found]


async def test_another_centres_transaction_is_not_found_and_noted_so_on_the_trail(
    desk: Any, db: Any
) -> None:
    stub, metadata = desk
    other = document("another-centre", T0, "COMPLETED")
    own = document(EXAMPLE_CENTER, T0, "COMPLETED")
    await db.transactions.insert_many([other, own])
    unknown = new_id(int(T0.timestamp() * 1000))

    answers = {}
    for tx in (other["_id"], unknown):
        cancel = intake_pb2.CancelTransactionRequest(id=tx, reason="withdrawn")
        rate = intake_pb2.RateTransactionRequest(id=tx, rating=5)
        answers[tx] = [
            await refusal(stub.CancelTransaction(cancel, metadata=metadata, timeout=10)),
            await refusal(stub.RateTransaction(rate, metadata=metadata, timeout=10)),
        ]
    for tx in (other["_id"], unknown):  # the caller is told the same of both
        assert answers[tx] == [(grpc.StatusCode.NOT_FOUND, f"transaction {tx!r} not found")] * 2

    for rpc in (CANCEL, RATE):
        assert [target.get(NOTE_KEY) for target in await events(db, rpc, other["_id"])] == [
            OUTSIDE_SCOPE
        ]
        assert [NOTE_KEY in target for target in await events(db, rpc, unknown)] == [False]

    # The desk's own transaction is in scope: refused for what it is, with no note.
    rate = intake_pb2.RateTransactionRequest(id=own["_id"], rating=9)
    code, _ = await refusal(stub.RateTransaction(rate, metadata=metadata, timeout=10))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert [NOTE_KEY in target for target in await events(db, RATE, own["_id"])] == [False]
