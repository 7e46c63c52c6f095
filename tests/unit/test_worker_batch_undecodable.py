"""A batch whose AMQP properties the client cannot decode is refused unread as `undecodable`,
audited, and answered only when its reply_to and correlation_id could be decoded; nothing of
it is stored."""

from datetime import UTC
from typing import Any

import pytest

from sanad.amqp.properties import UndecodableText, UndecodableTime
from sanad.amqp.verdicts import Dead
from tests.unit.batch_handler_support import Replies, Shared, batch, handler
from tests.unit.test_worker_batch_answers import message

NOT_UTF8 = UndecodableText(b"\xff\xfe")


def undecodable_message(**changes: Any) -> Any:
    found = message(batch("r-1"))
    for name, value in changes.items():
        setattr(found, name, value)
    return found


def assert_refused_unread(outcome: object, shared: Shared) -> Dead:
    assert isinstance(outcome, Dead)
    assert outcome.reason == "undecodable"
    assert outcome.detail.startswith("AMQP properties the client cannot decode: ")
    assert (shared.records, shared.transactions) == ({}, set())
    [event] = shared.audit_events
    assert event["outcome"] == "INVALID_ARGUMENT"
    assert event["target"]["refused_reason"] == "undecodable"
    return outcome


@pytest.mark.parametrize(
    "changes",
    [{"correlation_id": NOT_UTF8}, {"reply_to": UndecodableText(b"amq.gen-\xff")}],
)
async def test_a_batch_whose_answer_address_cannot_be_decoded_is_refused_unanswered(
    changes: dict[str, object],
) -> None:
    shared, replies = Shared(), Replies()

    outcome = await handler(shared, replies).handle(undecodable_message(**changes))

    refused = assert_refused_unread(outcome, shared)
    assert refused.expires_after_s is None  # nobody was told: kept until an operator takes it
    assert replies.sent == []


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"type": NOT_UTF8}, "type b'\\xff\\xfe'"),
        ({"timestamp": UndecodableTime(1, 1, 1, tzinfo=UTC)}, "timestamp (out of range)"),
    ],
)
async def test_a_batch_with_other_undecodable_properties_is_refused_and_told_why(
    changes: dict[str, object], named: str
) -> None:
    shared, replies = Shared(), Replies()

    outcome = await handler(shared, replies).handle(undecodable_message(**changes))

    refused = assert_refused_unread(outcome, shared)
    [(_, answer)] = replies.sent
    assert answer.refused_reason == refused.detail
    assert refused.detail.endswith(named)
