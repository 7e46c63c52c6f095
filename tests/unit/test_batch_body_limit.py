"""A batch body larger than the byte limit is refused before it is parsed: parsing costs time
and memory in proportion to the body, whatever the item limit says afterwards."""

import pytest

from sanad.amqp.verdicts import Dead
from sanad.v1 import events_pb2, intake_pb2
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler
from tests.unit.wire_format import varint
from workers.batch.app import build_app
from workers.batch.refusals import Limits
from workers.batch.settings import BatchSettings


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every body BatchSubmission.ParseFromString is given, in order."""
    given: list[bytes] = []
    real = events_pb2.BatchSubmission.ParseFromString

    def spy(self: events_pb2.BatchSubmission, body: bytes) -> int:
        given.append(bytes(body))
        return real(self, body)

    monkeypatch.setattr(events_pb2.BatchSubmission, "ParseFromString", spy)
    return given


async def test_a_body_over_the_byte_limit_is_refused_unparsed(parsed: list[bytes]) -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, limits=Limits(chunk=2, max_bytes=100))
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


async def test_a_body_of_more_items_than_allowed_is_refused_before_its_items_are_parsed(
    parsed: list[bytes],
) -> None:
    # Within the byte limit an empty item costs 2 bytes on the wire and about 100 in memory
    # once parsed: 8 million of them killed a worker at its 768 MiB, at every redelivery.
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, limits=Limits(chunk=2, max_items=5000))
    header = events_pb2.BatchSubmission(batch_id="b-huge", center_id="C1").SerializeToString()
    empty_item = events_pb2.BatchSubmission(items=[intake_pb2.SubmitTransactionRequest()])
    body = header + empty_item.SerializeToString() * 1_000_000

    outcome = await worker.handle(Message(body, message_id="b-huge"))

    assert isinstance(outcome, Dead)
    assert (outcome.reason, outcome.detail) == (
        "too-large",
        "over 5000 items; a batch may carry at most that many",
    )
    assert parsed == [header]
    [(_, answer)] = replies.sent
    assert (answer.batch_id, answer.refused_reason) == ("b-huge", outcome.detail)
    assert not shared.transactions


@pytest.mark.parametrize(("live", "history"), [(5000, 0), (0, 5000), (2500, 2500), (5001, 0)])
async def test_items_and_history_items_count_together_up_to_the_limit(
    live: int, history: int
) -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, limits=Limits(chunk=1000, max_items=5000))
    submission = events_pb2.BatchSubmission(
        batch_id="b-1",
        center_id="C1",
        items=[intake_pb2.SubmitTransactionRequest()] * live,
        history_items=[events_pb2.HistoricalTransaction()] * history,
    )

    outcome = await worker.handle(Message(submission.SerializeToString()))

    if live + history > 5000:
        assert isinstance(outcome, Dead)
        assert outcome.reason == "too-large"
    else:  # judged item by item: every one of these empty items is refused by field
        assert outcome is None
        [(_, answer)] = replies.sent
        assert len(answer.rejected) == 5000


@pytest.mark.parametrize(
    "body",
    [b"\x0a\x05ab", b"\x0a", b"\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0b"],
    ids=["truncated field", "key alone", "overlong length", "a group"],
)
async def test_a_body_that_is_not_protobuf_at_its_top_level_is_undecodable(body: bytes) -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)

    outcome = await worker.handle(Message(body))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "undecodable"


def history_step_bytes(count: int) -> bytes:
    """A BatchSubmission's one history item of `count` empty steps, as wire bytes (each empty
    step is its tag and a zero length)."""
    step = events_pb2.HistoricalTransaction(history=[intake_pb2.StatusChange()])
    item = step.SerializeToString() * count
    key = events_pb2.BatchSubmission.DESCRIPTOR.fields_by_name["history_items"].number << 3 | 2
    return bytes([key]) + varint(len(item)) + item


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        # One history item of a million empty steps: 633 MB for a worker that parsed it.
        (history_step_bytes(1_000_000), "history items of over 290000 fields in all"),
        # Fields protobuf does not know, two bytes each: seconds to read them all.
        (b"\x28\x00" * 1_000_000, "over 5000 items"),
    ],
    ids=["steps", "unknown fields"],
)
async def test_a_body_of_more_than_a_batch_at_its_limits_holds_is_refused_unparsed(
    body: bytes, complaint: str, parsed: list[bytes]
) -> None:
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies, limits=Limits(chunk=2, max_items=5000))
    header = events_pb2.BatchSubmission(batch_id="b-big", center_id="C1").SerializeToString()

    outcome = await worker.handle(Message(header + body, message_id="b-big"))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "too-large"
    assert complaint in outcome.detail
    [only] = parsed  # the header and the other fields read before the bound, never the body
    assert only.startswith(header)
    assert len(only) < 20_000
    assert not shared.transactions


@pytest.mark.parametrize(
    ("batch_id", "center_id", "complaint"),
    [
        ("b\x1fother", "C1", "batch_id must not contain control or invisible characters"),
        ("b\x00", "C1", "batch_id must not contain control or invisible characters"),
        ("b-1", "C1\u202e", "center_id must not contain control or invisible characters"),
    ],
)
async def test_batch_and_centre_ids_with_control_or_invisible_characters_are_invalid(
    batch_id: str, center_id: str, complaint: str
) -> None:
    # A batch is kept under its submitter's name, \x1f and its id: "b\x1fother" of user "u"
    # was the record of user "u\x1fb"'s batch "other".
    shared, replies = Shared(), Replies()
    worker = handler(shared, replies)
    submission = batch("r-1", batch_id=batch_id)
    submission.center_id = center_id

    outcome = await worker.handle(Message(submission.SerializeToString()))

    assert isinstance(outcome, Dead)
    assert (outcome.reason, outcome.detail) == ("invalid", complaint)
    assert not shared.transactions
