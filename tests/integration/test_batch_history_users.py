"""With auth required, a centre's batch user may not send migrated history (it would count in the
award's rollups as it likes): the batch is refused whole, nothing stored; the trusted user (the
dev stack's guest, which the seed uses) still may. Each batch leaves one audit event."""

import shutil
import signal
import uuid
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from sanad.amqp.topology import Topology
from sanad.cli.batch_send import send
from sanad.security.batch_users import broker_user
from sanad.v1 import events_pb2
from tests.integration.conftest import Stack, open_centre_with_service
from tests.integration.test_batch_history import history_item
from tests.integration.test_batch_users import Submitter, submitter
from tests.integration.workers_support import dead_letters, delete_retry_queues, start_batch_worker
from workers.batch.audit import RPC

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to create a broker user"
    ),
]
__all__ = ["submitter"]  # the fixture that creates `batch-<centre>` broker users


def migrated(center_id: str, service: str) -> events_pb2.BatchSubmission:
    item = history_item(service, 0, datetime(2024, 1, 7, 8, 0, tzinfo=UTC), rating=5)
    return events_pb2.BatchSubmission(
        batch_id=f"migrated-{uuid.uuid4().hex}", center_id=center_id, history_items=[item]
    )


async def test_history_from_a_centre_batch_user_is_refused_whole_and_from_the_trusted_user_stored(
    stack: Stack, submitter: Submitter, db: AsyncDatabase
) -> None:
    center_id, service = await open_centre_with_service(stack)
    own_url = submitter(center_id)
    trusted = broker_user(stack.amqp_url)
    worker = start_batch_worker(
        stack, SANAD_AUTH_MODE="required", SANAD_BATCH_TRUSTED_USERS=trusted
    )
    forged, migration = migrated(center_id, service), migrated(center_id, service)
    try:
        (refused,) = await send(own_url, stack.prefix, [forged], wait_s=60)
        (answered,) = await send(stack.amqp_url, stack.prefix, [migration], wait_s=60)
        reasons = await dead_letters(stack, Topology(stack.prefix).batch_queue, expected=1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await delete_retry_queues(stack)

    assert "may not send history_items" in refused.refused_reason
    assert not refused.accepted
    assert reasons == ["history-not-allowed"]
    assert [a.index for a in answered.accepted] == [0]
    stored = [doc["_id"] async for doc in db.transactions.find({"center_id": center_id})]
    assert stored == [answered.accepted[0].transaction_id]
    events = {
        e["request_id"]: (e["subject"], e["outcome"], e["target"].get("refused_reason"))
        # The batch's centre is in the target (ListAuditEvents' target_value finds it); the
        # event's own center_id is the centre its submitter acts for (none: trusted).
        async for e in db.audit_log.find({"rpc": RPC, "target.center_id": center_id})
    }
    assert events == {
        forged.batch_id: (f"batch-{center_id}", "PERMISSION_DENIED", "history-not-allowed"),
        migration.batch_id: (trusted, "OK", None),
    }
