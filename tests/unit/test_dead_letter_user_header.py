"""A dead letter names the broker-validated user who sent the message, never one the sender wrote
into its own headers (DESIGN §6: the broker validates the message `user_id`)."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from sanad.amqp.dead_letters import kept_copy, letter_of, replayed_copy
from sanad.amqp.outcomes import OutcomePublisher
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Dead, Retry

USER_HEADER = "x-sanad-user-id"
RETRY_QUEUE = "t.batch.retry"


def incoming(headers: dict[str, Any], user_id: str | None, exchange: str = "t.batch") -> Any:
    return SimpleNamespace(
        body=b"batch",
        headers=headers,
        type="sanad.v1.BatchSubmission",
        message_id="B1",
        content_type="application/x-protobuf",
        correlation_id="c-1",
        reply_to=None,
        timestamp=datetime(2026, 12, 3, tzinfo=UTC),
        expiration=None,
        user_id=user_id,
        exchange=exchange,
    )


def back_from(queue: str, headers: dict[str, Any], exchange: str = "") -> Any:
    """A message as the broker delivers a copy parked on `queue` back into its work queue once
    its delay ran out: the copy's headers, an x-death entry naming `queue` on top, no user_id,
    through the default exchange (the retry queue's dead-letter exchange)."""
    death = {"count": 1, "reason": "expired", "queue": queue, "exchange": ""}
    return incoming({**headers, "x-death": [death]}, user_id=None, exchange=exchange)


class Exchange:
    """Takes publishes; each one confirmed at once."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, message: Any, routing_key: str, mandatory: bool = False) -> None:
        self.published.append(message)


def publisher(exchange: Exchange, max_retries: int = 1) -> OutcomePublisher:
    outcomes = OutcomePublisher(
        Topology("t"),
        "t.batch",
        max_retries=max_retries,
        retry_delay_s=1.0,
        timeout_s=5.0,
        on_stall=lambda _: None,
    )
    outcomes.channel = SimpleNamespace(default_exchange=exchange)  # type: ignore[assignment]
    return outcomes


async def dead_letter_of(message: Any) -> Any:
    exchange = Exchange()
    done = await publisher(exchange).publish([message], [Dead("not-allowed", "no")], exchange)  # type: ignore[arg-type]
    assert done
    (letter,) = exchange.published
    return letter


async def test_a_dead_letter_names_the_validated_user_over_one_the_sender_wrote() -> None:
    forged = incoming({USER_HEADER: "batch-centre-OTHER"}, user_id="batch-centre-7")

    letter = await dead_letter_of(forged)

    assert letter.headers[USER_HEADER] == "batch-centre-7"


async def test_a_dead_letter_of_a_message_without_user_id_names_no_user() -> None:
    forged = incoming({USER_HEADER: "batch-centre-OTHER", "trace": "kept"}, user_id=None)

    letter = await dead_letter_of(forged)

    assert USER_HEADER not in letter.headers
    assert letter.headers["trace"] == "kept"


async def test_a_parked_retry_names_only_the_validated_user() -> None:
    exchange = Exchange()
    forged = incoming({USER_HEADER: "batch-centre-OTHER"}, user_id=None)

    await publisher(exchange).publish([forged], [Retry("unknown-transaction", "later")], exchange)  # type: ignore[arg-type]

    (parked,) = exchange.published
    assert USER_HEADER not in parked.headers


async def test_the_validated_user_stays_through_every_retry_and_into_the_dead_letter() -> None:
    # The parked copy cannot carry the original's user_id: the header the worker wrote on it
    # is the only record of who sent the message, each time it comes back.
    exchange = Exchange()
    outcomes = publisher(exchange, max_retries=3)
    later = Retry("unknown-transaction", "not stored yet")
    message = incoming({USER_HEADER: "batch-centre-OTHER"}, user_id="batch-centre-7")

    for _ in range(3):
        await outcomes.publish([message], [later], exchange)  # type: ignore[arg-type]
        message = back_from(RETRY_QUEUE, exchange.published[-1].headers)
    await outcomes.publish([message], [later], exchange)  # type: ignore[arg-type]

    *parked, letter = exchange.published
    assert [copy.headers["x-sanad-retries"] for copy in parked] == [1, 2, 3]
    assert letter.headers["x-sanad-reason"] == "unknown-transaction"
    assert [copy.headers[USER_HEADER] for copy in exchange.published] == ["batch-centre-7"] * 4


@pytest.mark.parametrize(
    ("died_in", "through"),
    [
        # x-death written by the sender itself, published through its work queue's exchange.
        (RETRY_QUEUE, "t.batch"),
        # Back from a retry queue, but another prefix's.
        ("other.batch.retry", ""),
    ],
)
@pytest.mark.parametrize(
    "outcome", [Retry("unknown-transaction", "later"), Dead("not-allowed", "no")]
)
async def test_a_header_on_a_message_not_back_from_this_retry_queue_is_the_senders(
    died_in: str, through: str, outcome: Any
) -> None:
    exchange = Exchange()
    forged = back_from(died_in, {USER_HEADER: "batch-centre-OTHER"}, exchange=through)

    await publisher(exchange).publish([forged], [outcome], exchange)  # type: ignore[arg-type]

    (copy,) = exchange.published
    assert USER_HEADER not in copy.headers


@pytest.mark.parametrize("copy", [kept_copy, replayed_copy])
def test_a_pass_over_dead_letters_keeps_the_user_the_worker_wrote(copy: Any) -> None:
    # The worker publishes its letters itself, without the sender's user_id: the header it
    # wrote is the only record of who sent the message.
    letter = incoming({USER_HEADER: "batch-centre-7", "x-sanad-reason": "invalid"}, user_id=None)

    assert copy(letter, "sanad.batch").headers[USER_HEADER] == "batch-centre-7"


@pytest.mark.parametrize("copy", [kept_copy, replayed_copy])
def test_a_pass_over_a_letter_the_broker_set_aside_names_its_validated_user(copy: Any) -> None:
    letter = incoming({USER_HEADER: "batch-centre-OTHER"}, user_id="batch-centre-7")

    assert copy(letter, "sanad.batch").headers[USER_HEADER] == "batch-centre-7"


@pytest.mark.parametrize("copy", [kept_copy, replayed_copy])
def test_a_letter_the_broker_set_aside_without_user_id_names_no_user(copy: Any) -> None:
    # Published without user_id, which the broker does not check then, with a header naming
    # someone else, and set aside at the delivery limit: the broker adds x-death.
    death = [{"reason": "delivery_limit", "queue": "sanad.batch", "count": 1}]
    letter = incoming({USER_HEADER: "migration", "x-death": death}, user_id=None)

    assert USER_HEADER not in copy(letter, "sanad.batch").headers


async def test_a_senders_own_x_death_does_not_pass_its_refusal_off_as_set_aside_by_the_broker() -> (
    None
):
    # A batch user may write x-death into its own message: its refusal's letter, meant to
    # expire (it carries clear civil numbers), must still read as the worker's and expire.
    forged = {"x-death": [{"queue": "t.batch", "reason": "rejected", "count": 1}]}
    forged["x-first-death-queue"] = "t.batch"
    exchange = Exchange()
    refused = Dead("not-allowed", "no such centre", expires_after_s=14 * 86_400)
    await publisher(exchange).publish([incoming(forged, "batch-7")], [refused], exchange)
    (letter,) = exchange.published
    assert not any(name.startswith(("x-death", "x-first-death-")) for name in letter.headers)
    delivered = incoming(dict(letter.headers), user_id=None, exchange="t.dead")
    delivered.expiration = letter.expiration
    assert letter_of(0, delivered, "t.batch").reason == "not-allowed"
    kept = kept_copy(delivered, "t.batch")
    assert kept.expiration is not None
    assert kept.headers[USER_HEADER] == "batch-7"
