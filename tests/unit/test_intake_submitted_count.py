"""The submitted counter counts each accepted transaction once, when the broker confirms it: also
when its first publish failed and a retry with the same request id was confirmed, and when the
confirm came after its caller stopped waiting; the retry's audit event is the interceptor's to
write."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from sanad.amqp.packing import Packing, PackingPublisher
from sanad.deadline import Deadline
from sanad.errors import Unavailable
from sanad.records import SUBMITTED_PACK_TYPE, SUBMITTED_TYPE
from sanad.security import audit, audit_offer
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import events_pb2
from services.intake.unconfirmed import UnconfirmedClaims
from tests.unit.test_intake_submit import CENTER, SERVICE, Setup, setup, submission, submit

LABELS = {
    "governorate": CENTER.governorate_code,
    "wilayat": CENTER.wilayat_code,
    "agency": SERVICE.agency_code,
}


def counted() -> tuple[float, float]:
    """The submitted counter and the fees counter of the test centre and service."""
    submitted = REGISTRY.get_sample_value("sanad_transactions_submitted_total", LABELS)
    fees = REGISTRY.get_sample_value("sanad_transaction_fees_baisa_total", LABELS)
    return submitted or 0.0, fees or 0.0


def counted_since(before: tuple[float, float]) -> tuple[float, float]:
    now = counted()
    return now[0] - before[0], now[1] - before[1]


async def failed_first_publish(s: Setup) -> None:
    """A fresh submission whose publish the broker refused."""
    s.publisher.down = True
    with pytest.raises(Unavailable):
        await submit(s, submission())
    s.publisher.down = False


async def test_a_submission_and_its_replays_count_once() -> None:
    s = setup()
    before = counted()
    await submit(s, submission())
    await submit(s, submission())
    assert counted_since(before) == (1, SERVICE.fee_baisa)
    assert len(s.intake.unconfirmed) == 0  # the normal path leaves nothing waiting


async def test_a_retry_confirmed_after_the_first_publish_failed_counts_the_transaction_once() -> (
    None
):
    s = setup()
    before = counted()
    await failed_first_publish(s)
    assert counted_since(before) == (0, 0)
    first = await submit(s, submission())
    again = await submit(s, submission())
    assert again == first
    assert counted_since(before) == (1, SERVICE.fee_baisa)


async def test_concurrent_retries_after_a_failed_publish_count_the_transaction_once() -> None:
    s = setup()
    before = counted()
    await failed_first_publish(s)
    gate = asyncio.Event()
    publish = s.publisher.publish

    async def held(*args: object, **kwargs: object) -> None:
        await gate.wait()  # both retries are past their claim before either is confirmed
        await publish(*args, **kwargs)  # type: ignore[arg-type]

    s.publisher.publish = held  # type: ignore[method-assign]
    retries = asyncio.gather(submit(s, submission()), submit(s, submission()))
    await asyncio.sleep(0.01)
    gate.set()
    first, second = await retries
    assert first == second
    assert counted_since(before) == (1, SERVICE.fee_baisa)


def offer() -> audit_offer.Offer:
    """The running call's OK event, as the security interceptor offers it."""

    def build(results: Mapping[str, str]) -> audit.AuditEvent:
        return audit.AuditEvent(
            time=datetime.now(UTC),
            subject="dev-admin",
            role="admin",
            agency_code="",
            center_id="C1",
            rpc="/sanad.v1.IntakeService/SubmitTransaction",
            target=dict(results),
            outcome="OK",
            request_id="req",
            recorded_by="intake",
        )

    return audit_offer.offer(build)


async def test_the_retry_of_a_failed_publish_leaves_its_audit_event_to_the_interceptor() -> None:
    # The failed message may have reached the broker after all: the retry is a replay of its
    # claim, and a replay's event is not carried (operations.py): the interceptor writes it.
    s = setup()
    first_call = offer()
    await failed_first_publish(s)
    assert first_call.taken  # in the message the broker refused; the call failed
    retry_call = offer()
    accepted = await submit(s, submission())
    assert not retry_call.taken
    sent = s.publisher.decoded(events_pb2.TransactionSubmitted)
    assert [e.transaction_id for e in sent] == [accepted.transaction_id]
    assert not sent[0].HasField("audit")


def test_the_oldest_waiting_claim_is_forgotten_beyond_the_limit() -> None:
    claims = UnconfirmedClaims(limit=2)
    for key in ("a", "b", "c"):
        claims.claimed(key)
    assert len(claims) == 2
    assert not claims.confirmed("a")
    assert claims.confirmed("b")
    assert not claims.confirmed("b")  # counted once
    assert claims.confirmed("c")


class SlowBroker:
    """Confirms every message after a delay within the publisher's own confirm limit."""

    timeout_s = 2.0

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.confirmed = 0

    async def publish(self, *args: object, **kwargs: object) -> None:
        await asyncio.sleep(self.delay_s)
        self.confirmed += 1


def packed(s: Setup, broker: SlowBroker) -> None:
    """Publish through the lane intake runs in production (sanad.amqp.packing)."""
    s.intake.publisher = PackingPublisher(broker, {SUBMITTED_TYPE: SUBMITTED_PACK_TYPE}, Packing())


async def test_a_submission_confirmed_after_its_callers_deadline_is_counted_once() -> None:
    s = setup()
    broker = SlowBroker(0.5)
    packed(s, broker)
    before = counted()
    with pytest.raises(Unavailable):
        await s.intake.submit(submission(request_id=""), "c", DEV_ADMIN, Deadline(0.25))
    assert counted_since(before) == (0, 0)
    await s.intake.publisher.drain()  # type: ignore[attr-defined]
    assert broker.confirmed == 1  # the broker took it: it will be stored
    assert counted_since(before) == (1, SERVICE.fee_baisa)


async def test_a_late_confirm_and_the_retry_after_it_count_the_transaction_once() -> None:
    s = setup()
    broker = SlowBroker(0.5)
    packed(s, broker)
    before = counted()
    with pytest.raises(Unavailable):
        await s.intake.submit(submission(), "c", DEV_ADMIN, Deadline(0.25))
    await s.intake.publisher.drain()  # type: ignore[attr-defined]
    assert counted_since(before) == (1, SERVICE.fee_baisa)
    await s.intake.submit(submission(), "c", DEV_ADMIN, Deadline(5.0))  # the client's retry
    assert broker.confirmed == 2
    assert counted_since(before) == (1, SERVICE.fee_baisa)
