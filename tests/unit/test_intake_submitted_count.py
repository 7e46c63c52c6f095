"""The submitted counter counts each accepted transaction once, also when its first publish
failed and a retry with the same request id was confirmed; the retry's audit event is the
interceptor's to write."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from sanad.errors import Unavailable
from sanad.security import audit, audit_offer
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
    # The failed message may have reached the broker after all and be the one stored: the
    # worker stores only the event of the message that stores the transaction, so an event
    # the retry carried could be dropped. Not taken, the interceptor writes it itself.
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
