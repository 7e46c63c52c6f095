"""How a dead letter reads and what its replayed copy carries (sanadctl dead-letters)."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sanad.amqp.dead_letters import REPLAYS_HEADER, letter_of, replayed_copy


def incoming(headers: dict[str, Any], user_id: str | None = None) -> Any:
    return SimpleNamespace(
        body=b"payload",
        headers=headers,
        type="sanad.v1.TransactionStatusChanged",
        message_id="change-1",
        content_type="application/x-protobuf",
        correlation_id=None,
        reply_to=None,
        timestamp=datetime(2026, 12, 3, tzinfo=UTC),
        user_id=user_id,
    )


def test_a_letter_the_broker_set_aside_names_the_brokers_reason() -> None:
    message = incoming({"x-death": [{"reason": "delivery_limit", "queue": "sanad.ingest"}]})
    letter = letter_of(4, message)
    assert letter.reason == "broker: delivery_limit"
    assert letter.position == 4
    assert letter.message_id == "change-1"
    assert letter.replays == 0


def test_a_replayed_copy_is_the_message_as_first_sent_counting_the_replay() -> None:
    message = incoming(
        {
            "x-sanad-reason": "unknown-transaction",
            "x-sanad-detail": "transaction T not stored (gave up after 10 retries)",
            "x-sanad-retries": 10,
            "x-sanad-queue": "sanad.ingest",
            "x-death": [{"reason": "expired"}],
            "x-first-death-reason": "expired",
            REPLAYS_HEADER: 1,
            "trace": "kept",
        },
        user_id="batch-centre-7",
    )
    copy = replayed_copy(message)
    assert copy.headers == {
        REPLAYS_HEADER: 2,
        "trace": "kept",
        "x-sanad-user-id": "batch-centre-7",
    }
    assert copy.body == b"payload"
    assert copy.type == "sanad.v1.TransactionStatusChanged"
    assert copy.message_id == "change-1"
    # The broker validates a user id against its publisher: the copy carries it as a header.
    assert copy.user_id is None
