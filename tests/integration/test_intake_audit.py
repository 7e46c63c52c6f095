"""Intake's audit trail: an accepted submission's event travels in its message and is stored with
its transaction; replays and refusals are written by intake at once."""

import signal

import grpc
import pytest
from pymongo import AsyncMongoClient

from sanad.security.audit import COLLECTION
from tests.integration.conftest import Stack, eventually, open_centre_with_service, submit_request

pytestmark = pytest.mark.integration

SUBMIT = "/sanad.v1.IntakeService/SubmitTransaction"


async def test_an_accepted_submission_is_audited_with_its_transaction_and_replays_at_once(
    stack: Stack, mongo_url: str
) -> None:
    center_id, service = await open_centre_with_service(stack)
    await stack.wait_for_snapshot(center_id)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[stack.env["SANAD_MONGO_DATABASE"]]
    events = db[COLLECTION]

    async def audited(**found: object) -> list[dict[str, object]]:
        return await events.find({"rpc": SUBMIT, **found}).sort("_id", 1).to_list()

    worker = None
    try:
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

        worker = stack.start_worker()

        async def stored() -> bool:
            return await db.transactions.find_one({"_id": tid}) is not None

        await eventually(stored, within_s=30)
        trail = await audited(target_values=tid)
        assert [e["request_id"] for e in trail] == ["req-first", "req-replay"]
        carried = trail[0]
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
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        await client.close()


async def _drained(stack: Stack) -> bool:
    return await stack.queue_depth(f"{stack.prefix}.ingest") == 0
