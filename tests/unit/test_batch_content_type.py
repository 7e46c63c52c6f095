"""A batch whose content_type names something other than protobuf is refused before it is
read: a JSON or CSV body read as protobuf failed with a parser's message, or parsed by chance."""

import pytest

from sanad.amqp.verdicts import Dead
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler
from workers.batch.refusals import other_content_type


@pytest.mark.parametrize("named", ["application/json", "text/csv; charset=utf-8", "text/plain"])
async def test_a_batch_named_as_another_content_type_is_refused_and_answered(named: str) -> None:
    shared, replies = Shared(), Replies()
    body = batch("r-1").SerializeToString()

    outcome = await handler(shared, replies).handle(Message(body, content_type=named))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "undecodable"
    assert outcome.detail.startswith(f"content_type {named!r}: a batch is a binary protobuf")
    assert not shared.transactions
    [(_, answer)] = replies.sent
    assert answer.refused_reason == outcome.detail


@pytest.mark.parametrize(
    "named",
    [
        None,
        "",
        "application/x-protobuf",
        "Application/X-Protobuf; proto=sanad",
        "application/protobuf",
        "application/octet-stream",
    ],
)
async def test_a_batch_named_protobuf_or_not_named_is_read(named: str | None) -> None:
    shared, replies = Shared(), Replies()
    body = batch("r-1").SerializeToString()

    assert await handler(shared, replies).handle(Message(body, content_type=named)) is None
    assert len(shared.transactions) == 1


def test_only_another_media_type_is_named() -> None:
    assert other_content_type("application/x-protobuf") is None
    assert other_content_type(" application/x-protobuf ;v=1") is None
    assert other_content_type("application/json") == "application/json"
    assert other_content_type("application/x-protobuf-text") == "application/x-protobuf-text"
