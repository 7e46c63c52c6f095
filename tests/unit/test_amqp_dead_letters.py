"""How a dead letter reads and what its replayed copy carries (sanadctl dead-letters)."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sanad.amqp.copies import EXPIRES_HEADER, USER_ID_HEADER
from sanad.amqp.dead_letters import REPLAYS_HEADER, kept_copy, letter_of, replayed_copy
from sanad.amqp.topology import DETAIL_HEADER, QUEUE_HEADER, REASON_HEADER


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
        expiration=None,
    )


def test_a_letter_the_broker_set_aside_names_the_brokers_reason() -> None:
    message = incoming({"x-death": [{"reason": "delivery_limit", "queue": "sanad.ingest"}]})
    letter = letter_of(4, message, "sanad.ingest")
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
    copy = replayed_copy(message, "sanad.ingest")
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


# A batch its sender published with expiration=0 and headers of its own: the broker set it aside
# from its work queue as expired, adding x-death, and left the sender's headers as they were.
FORGED = {
    REASON_HEADER: "spoofed",
    DETAIL_HEADER: "looks like the worker's",
    QUEUE_HEADER: "sanad.ingest",
    EXPIRES_HEADER: "2000-01-01T00:00:00+00:00",
}
SET_ASIDE = [{"reason": "expired", "queue": "sanad.batch", "count": 1}]


def test_a_letter_the_broker_set_aside_is_read_without_what_its_sender_wrote() -> None:
    letter = letter_of(0, incoming({**FORGED, "x-death": SET_ASIDE}), "sanad.batch")

    assert letter.reason == "broker: expired"
    assert letter.detail == ""
    assert letter.expires_at == ""


def test_a_letter_the_broker_set_aside_goes_back_as_ours_and_never_expires() -> None:
    kept = kept_copy(incoming({**FORGED, "x-death": SET_ASIDE}), "sanad.batch")

    assert kept.expiration is None
    assert kept.headers == {REASON_HEADER: "broker: expired", QUEUE_HEADER: "sanad.batch"}
    # The next pass reads what this one wrote.
    again = incoming(dict(kept.headers or {}))
    assert letter_of(0, again, "sanad.batch").reason == "broker: expired"
    assert kept_copy(again, "sanad.batch").expiration is None


def test_the_validated_user_of_a_letter_the_broker_set_aside_outlasts_many_passes() -> None:
    letter = incoming(
        {USER_ID_HEADER: "batch-centre-OTHER", "x-death": SET_ASIDE}, user_id="batch-centre-7"
    )

    for _ in range(3):  # a copy carries no user_id property: the broker would refuse it
        kept = kept_copy(letter, "sanad.batch")
        letter = incoming(dict(kept.headers or {}))

    assert (letter.headers or {})[USER_ID_HEADER] == "batch-centre-7"
    assert replayed_copy(letter, "sanad.batch").headers[USER_ID_HEADER] == "batch-centre-7"  # type: ignore[index]


def test_a_letter_the_worker_wrote_after_a_wait_on_the_retry_queue_keeps_its_reason() -> None:
    # The retry queue dead-lettered the message back into its work queue (x-death names the
    # retry queue); the worker then gave up on it and wrote the letter itself.
    waited = [{"reason": "expired", "queue": "sanad.ingest.retry", "count": 10}]
    ends = "2030-01-01T00:00:00+00:00"
    headers = {REASON_HEADER: "unknown-transaction", EXPIRES_HEADER: ends, "x-death": waited}

    letter = letter_of(0, incoming(headers), "sanad.ingest")

    assert letter.reason == "unknown-transaction"
    assert letter.expires_at == ends
