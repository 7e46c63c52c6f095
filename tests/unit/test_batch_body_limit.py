"""A batch body larger than the byte limit is refused before it is parsed: parsing costs time
and memory in proportion to the body, whatever the item limit says afterwards."""

import pytest

from sanad.amqp.outcomes import Dead
from sanad.v1 import events_pb2
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler
from workers.batch.app import build_app
from workers.batch.refusals import Limits
from workers.batch.settings import BatchSettings


async def test_a_body_over_the_byte_limit_is_refused_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, limits=Limits(chunk=2, max_bytes=100))
    parsed: list[bytes] = []
    real = events_pb2.BatchSubmission.ParseFromString

    def spy(self: events_pb2.BatchSubmission, body: bytes) -> int:
        parsed.append(body)
        return real(self, body)

    monkeypatch.setattr(events_pb2.BatchSubmission, "ParseFromString", spy)
    big = batch("r-1", "r-2", "r-3").SerializeToString()
    assert len(big) > 100

    outcome = await worker.handle(Message(big, message_id="b-1"))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "body-too-large"
    assert f"{len(big)} bytes" in outcome.detail
    assert "at most 100 bytes" in outcome.detail
    assert not parsed
    assert not shared.transactions
    [(_, answer)] = replies.sent
    assert answer.refused_reason == outcome.detail
    [event] = shared.audit_events
    assert (event["outcome"], event["target"]["refused_reason"]) == (
        "RESOURCE_EXHAUSTED",
        "body-too-large",
    )


async def test_a_body_at_the_byte_limit_is_handled() -> None:
    shared, replies = Shared(), Replies()
    body = batch("r-1").SerializeToString()
    worker = handler(shared, replies, limits=Limits(chunk=2, max_bytes=len(body)))

    assert await worker.handle(Message(body)) is None
    assert len(shared.transactions) == 1


async def test_the_worker_takes_its_byte_limit_from_its_settings() -> None:
    app = build_app(BatchSettings(batch_max_bytes=12345))
    try:
        assert app.consumer.handler.limits.max_bytes == 12345  # type: ignore[attr-defined]
    finally:
        await app.close()
