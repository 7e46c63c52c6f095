"""A batch refused as a whole leaves a dead letter holding its items' clear civil numbers: it
expires after SANAD_BATCH_DEAD_LETTER_TTL_DAYS, which production may not turn off, whether its
submitter was answered or not (one nobody was answered for is counted apart, for an operator
to look at meanwhile). Other dead letters, and replayed copies, never expire."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from sanad.amqp.copies import EXPIRES_HEADER
from sanad.amqp.dead_letters import kept_copy, letter_of, replayed_copy
from sanad.amqp.outcomes import OutcomePublisher
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Dead
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler
from tests.unit.test_security_settings import SAFE
from workers.batch.app import build_app
from workers.batch.refusals import DEAD_LETTER_REASONS, Limits
from workers.batch.settings import BatchSettings

DAY_S = 24 * 3600.0
BATCH_QUEUE = "sanad.batch"
UNANSWERED = "sanad_batch_refusals_unanswered_total"


def test_a_refused_batch_is_kept_fourteen_days_by_default() -> None:
    assert BatchSettings().batch_dead_letter_ttl_s == 14 * DAY_S


def test_the_retention_comes_from_the_environment_in_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANAD_BATCH_DEAD_LETTER_TTL_DAYS", "0.5")
    assert BatchSettings().batch_dead_letter_ttl_s == DAY_S / 2
    monkeypatch.setenv("SANAD_BATCH_DEAD_LETTER_TTL_DAYS", str(1 / 86400))
    assert BatchSettings().batch_dead_letter_ttl_s == 1.0


def test_zero_keeps_refused_batches_in_dev() -> None:
    assert BatchSettings(batch_dead_letter_ttl_days=0).batch_dead_letter_ttl_s is None


@pytest.mark.parametrize("days", [-1, 366, float("nan"), 1e-6, 1e-12])
def test_a_retention_below_a_second_over_a_year_or_not_a_number_is_refused(days: float) -> None:
    with pytest.raises(ValidationError):
        BatchSettings(batch_dead_letter_ttl_days=days)


def test_production_refuses_keeping_refused_batches_for_good() -> None:
    with pytest.raises(ValidationError, match="SANAD_BATCH_DEAD_LETTER_TTL_DAYS=0"):
        BatchSettings(**{**SAFE, "batch_dead_letter_ttl_days": 0})


def test_production_takes_the_default_retention() -> None:
    assert BatchSettings(**SAFE).batch_dead_letter_ttl_s == 14 * DAY_S


async def test_the_worker_takes_its_retention_from_its_settings() -> None:
    app = build_app(BatchSettings(batch_dead_letter_ttl_days=2))
    try:
        limits = app.consumer.handler.limits  # type: ignore[attr-defined]
        assert limits.refusal_ttl_s == 2 * DAY_S
    finally:
        await app.close()


async def test_every_refusal_expires_whether_answered_or_not() -> None:
    # An unanswered one was kept for good: any batch user could pile up clear civil numbers.
    limits = Limits(chunk=2, refusal_ttl_s=60.0)
    body = batch("r-1").SerializeToString()
    worker = handler(Shared(), Replies(), may_submit=False, limits=limits)

    answered = await worker.handle(Message(body))
    unanswered = await worker.handle(Message(body, reply_to=None))
    hijacking = await worker.handle(Message(body, reply_to="sanad.ingest"))

    assert isinstance(answered, Dead)
    assert (answered.reason, answered.expires_after_s) == ("not-allowed", 60.0)
    assert isinstance(unanswered, Dead)
    assert (unanswered.expires_after_s, unanswered.unanswered) == (60.0, True)
    assert isinstance(hijacking, Dead)
    assert (hijacking.reason, hijacking.expires_after_s, hijacking.unanswered) == (
        "bad-reply-to",
        60.0,
        True,
    )


@dataclass
class DeadExchange:
    """Records what is published to the dead-letter exchange."""

    published: list[aio_pika.Message] = field(default_factory=list)

    async def publish(self, message: aio_pika.Message, **_: Any) -> None:
        self.published.append(message)


def incoming(headers: dict[str, Any], expiration: float | None = None) -> Any:
    return SimpleNamespace(
        body=b"batch with civil numbers",
        headers=headers,
        type="sanad.v1.BatchSubmission",
        message_id="b-1",
        content_type="application/x-protobuf",
        correlation_id="c-1",
        reply_to="amq.gen-abc",
        timestamp=None,
        user_id=None,
        expiration=expiration,
    )


async def test_a_dead_letter_carries_its_expiration_and_when_it_ends() -> None:
    outcomes = OutcomePublisher(
        Topology("t"), "t.batch", max_retries=1, retry_delay_s=1, timeout_s=1, on_stall=print
    )
    dead = DeadExchange()
    # A sender's own expiry header says nothing of the letter: never carried.
    sent = incoming({EXPIRES_HEADER: "2000-01-01T00:00:00+00:00"})

    await outcomes.publish(
        [sent, sent],
        [Dead("not-allowed", "no", expires_after_s=3600.0), Dead("handler-failed", "bug")],
        dead,  # type: ignore[arg-type]
    )

    expiring, kept = dead.published
    assert expiring.expiration == 3600.0
    ends = datetime.fromisoformat(str((expiring.headers or {})[EXPIRES_HEADER]))
    assert abs(ends - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)
    assert kept.expiration is None
    assert EXPIRES_HEADER not in (kept.headers or {})


def unanswered(reason: str) -> float | None:
    """The count of unanswered refusals for reason; None before the series exists."""
    return REGISTRY.get_sample_value(UNANSWERED, {"reason": reason})


def test_unanswered_refusals_are_counted_from_zero_for_every_reason() -> None:
    # A series born at its first refusal shows no increase() to the alert.
    handler(Shared(), Replies())

    assert [reason for reason in DEAD_LETTER_REASONS if unanswered(reason) is None] == []


async def test_a_refusal_nobody_was_answered_for_counts_once_its_letter_is_confirmed() -> None:
    limits = Limits(chunk=2, refusal_ttl_s=60.0)
    body = batch("r-1").SerializeToString()
    worker = handler(Shared(), Replies(), may_submit=False, limits=limits)
    reasons = ("not-allowed", "bad-reply-to")
    before = {reason: unanswered(reason) or 0.0 for reason in reasons}

    def counted() -> dict[str, float]:
        return {reason: (unanswered(reason) or 0.0) - before[reason] for reason in reasons}

    refusals = [
        await worker.handle(Message(body)),  # answered on its reply queue
        await worker.handle(Message(body, reply_to=None)),  # nobody to answer
        await worker.handle(Message(body, reply_to="sanad.ingest")),  # may not be answered
    ]
    # Deciding counts nothing: an attempt retried after a transient failure decides again.
    assert counted() == {"not-allowed": 0, "bad-reply-to": 0}

    outcomes = OutcomePublisher(
        Topology("t"), "t.batch", max_retries=1, retry_delay_s=1, timeout_s=1, on_stall=print
    )
    dead = DeadExchange()
    await outcomes.publish([incoming({})] * 3, refusals, dead)  # type: ignore[arg-type]

    assert len(dead.published) == 3
    assert counted() == {"not-allowed": 1, "bad-reply-to": 1}


def test_a_replayed_copy_never_expires() -> None:
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    letter = incoming({"x-sanad-reason": "not-allowed", EXPIRES_HEADER: ends}, expiration=3600)

    copy = replayed_copy(letter, BATCH_QUEUE)

    assert copy.expiration is None
    assert EXPIRES_HEADER not in (copy.headers or {})


def test_a_letter_put_back_keeps_what_is_left_of_its_time() -> None:
    ends = datetime.now(UTC) + timedelta(minutes=10)
    letter = incoming({EXPIRES_HEADER: ends.isoformat()}, expiration=3600)

    copy = kept_copy(letter, BATCH_QUEUE)

    assert copy.expiration is not None
    assert 590 < float(copy.expiration) <= 600  # type: ignore[arg-type]
    assert letter_of(0, letter, BATCH_QUEUE).expires_at == ends.isoformat()
    lapsed = incoming({EXPIRES_HEADER: (ends - timedelta(hours=1)).isoformat()})
    assert kept_copy(lapsed, BATCH_QUEUE).expiration == 0.001
    assert kept_copy(incoming({}), BATCH_QUEUE).expiration is None
    assert (
        kept_copy(incoming({EXPIRES_HEADER: "soon"}, expiration=30.0), BATCH_QUEUE).expiration
        == 30.0
    )
    assert letter_of(0, incoming({}), BATCH_QUEUE).expires_at == ""
