"""Intake's audit trail: an accepted submission's event travels in its message and is stored with
its transaction; replays and refusals are written by intake at once."""

import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.security.audit import COLLECTION
from sanad.v1 import intake_pb2
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request

pytestmark = pytest.mark.integration

SUBMIT = "/sanad.v1.IntakeService/SubmitTransaction"
SUBMIT_STREAM = "/sanad.v1.IntakeService/SubmitTransactions"


@dataclass
class Trail:
    """A centre offering a service, the database's view of the trail, and the ingest worker
    once started (stopped when the test ends)."""

    stack: Stack
    center_id: str
    service: str
    db: Any
    worker: subprocess.Popen[bytes] | None = None

    async def audited(self, **found: object) -> list[dict[str, object]]:
        """The trail's events matching `found`, oldest first."""
        return await self.db[COLLECTION].find(found).sort("_id", 1).to_list()

    def start_worker(self) -> None:
        self.worker = self.stack.start_worker()

    async def stored(self, transaction_id: str) -> bool:
        return await self.db.transactions.find_one({"_id": transaction_id}) is not None


@pytest.fixture
async def trail(stack: Stack, mongo_url: str) -> AsyncIterator[Trail]:
    center_id, service = await open_centre_with_service(stack)
    await stack.wait_for_snapshot(center_id)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    found = Trail(stack, center_id, service, client[stack.env["SANAD_MONGO_DATABASE"]])
    try:
        yield found
    finally:
        if found.worker is not None:
            found.worker.send_signal(signal.SIGTERM)
            found.worker.wait(timeout=30)
        await client.close()


async def test_an_accepted_submission_is_audited_with_its_transaction_and_replays_at_once(
    stack: Stack, trail: Trail
) -> None:
    center_id, service = trail.center_id, trail.service

    async def audited(**found: object) -> list[dict[str, object]]:
        return await trail.audited(rpc=SUBMIT, **found)

    first = await stack.intake.SubmitTransaction(
        submit_request(center_id, service, "audit-1"), metadata=(("x-request-id", "req-first"),)
    )
    tid = first.transaction_id
    # Intake wrote nothing: the event is in the queued message, not yet in the trail.
    assert await audited(target_values=tid) == []

    replay = await stack.intake.SubmitTransaction(
        submit_request(center_id, service, "audit-1"),
        metadata=(("x-request-id", "req-replay"),),
    )
    assert replay.transaction_id == tid
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.intake.SubmitTransaction(
            submit_request(center_id, "NO-SUCH-SERVICE", "audit-2"),
            metadata=(("x-request-id", "req-refused"),),
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # The replay and the refusal made no message that could carry them: written at once.
    assert [e["request_id"] for e in await audited(target_values=tid)] == ["req-replay"]
    (refusal,) = await audited(request_id="req-refused")
    assert refusal["outcome"] == "NOT_FOUND"

    trail.start_worker()
    await eventually(lambda: trail.stored(tid), within_s=30)
    found = await audited(target_values=tid)
    assert [e["request_id"] for e in found] == ["req-first", "req-replay"]
    carried = found[0]
    assert carried["outcome"] == "OK"
    assert carried["recorded_by"] == "intake"
    assert (carried["subject"], carried["role"]) == ("dev-admin", "admin")
    assert carried["target"] == {
        "request_id": "audit-1",
        "center_id": center_id,
        "service_code": service,
        "transaction_id": tid,
    }
    # The replay republished the transaction without an event; it stays stored once.
    await eventually(lambda: _drained(stack), within_s=30)
    assert len(await audited(target_values=tid)) == 2


async def _drained(stack: Stack) -> bool:
    return await stack.queue_depth(f"{stack.prefix}.ingest") == 0


async def test_each_streamed_submission_is_audited_as_a_unary_one_would_be(
    stack: Stack, trail: Trail
) -> None:
    """A fresh item's event travels in its message and is stored with its transaction; a
    replayed item and a refused one are written by intake at once; the stream keeps its own
    event. Each names the item's target, the caller and the call's request id."""
    center_id, service = trail.center_id, trail.service

    async def audited(**found: object) -> list[dict[str, object]]:
        return await trail.audited(request_id="req-stream", **found)

    earlier = await stack.intake.SubmitTransaction(submit_request(center_id, service, "s-old"))

    async def items() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        for request in (
            submit_request(center_id, service, "s-new"),
            submit_request(center_id, service, "s-old"),  # a replay of the unary call
            submit_request(center_id, "NO-SUCH-SERVICE", "s-bad"),
        ):
            yield intake_pb2.SubmitTransactionsRequest(transaction=request)

    answers = [
        a
        async for a in stack.intake.SubmitTransactions(
            items(), metadata=(("x-request-id", "req-stream"),), timeout=30
        )
    ]
    fresh = answers[0].transaction_id
    assert answers[1].transaction_id == earlier.transaction_id
    assert answers[2].error_code == "NOT_FOUND"

    # The replay, the refusal and the stream itself are written at once; the fresh item's
    # event is in its queued message.
    async def written() -> bool:
        return len(await audited()) == 3

    await eventually(written, within_s=15)
    assert await audited(**{"target.transaction_id": fresh}) == []
    (replay,) = await audited(**{"target.request_id": "s-old"})
    assert (replay["rpc"], replay["outcome"]) == (SUBMIT_STREAM, "OK")
    assert replay["target"] == {
        "request_id": "s-old",
        "center_id": center_id,
        "service_code": service,
        "transaction_id": earlier.transaction_id,
    }
    (refusal,) = await audited(**{"target.request_id": "s-bad"})
    assert refusal["outcome"] == "NOT_FOUND"
    assert refusal["target"] == {
        "request_id": "s-bad",
        "center_id": center_id,
        "service_code": "NO-SUCH-SERVICE",
    }
    (stream,) = await audited(target={})
    assert (stream["rpc"], stream["outcome"]) == (SUBMIT_STREAM, "OK")
    assert stream["item_outcomes"] == {"OK": 2, "NOT_FOUND": 1}

    trail.start_worker()
    await eventually(lambda: trail.stored(fresh), within_s=30)
    (carried,) = await audited(**{"target.transaction_id": fresh})
    assert (carried["rpc"], carried["outcome"]) == (SUBMIT_STREAM, "OK")
    assert (carried["subject"], carried["role"]) == ("dev-admin", "admin")
    assert carried["target"] == {
        "request_id": "s-new",
        "center_id": center_id,
        "service_code": service,
        "transaction_id": fresh,
    }
    assert len(await audited()) == 4
