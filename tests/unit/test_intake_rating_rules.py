"""Rating rules: one rating from 1 to 5 per completed transaction, claimed once, sent until
confirmed."""

import asyncio

import pytest

from sanad.amqp.topology import RATED, STATUS_CHANGED
from sanad.domain.transactions import Status
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed, Unavailable
from sanad.v1 import common_pb2, events_pb2
from tests.unit.intake_tracking_fakes import CENTRE, T0, rate, stored, tracker, update


async def test_a_rating_is_from_one_to_five_after_completion_and_once() -> None:
    t, _ = tracker(stored(Status.IN_PROGRESS))
    with pytest.raises(PreconditionFailed):
        await rate(t, 4)
    t, publisher = tracker(stored(Status.COMPLETED))
    for bad in (0, 6, -1):
        with pytest.raises(Invalid):
            await rate(t, bad)
    await rate(t, 4, CENTRE)
    await rate(t, 4)  # a retry of the same rating is published again
    with pytest.raises(AlreadyExists):
        await rate(t, 5)  # refused, once the claimed rating is sent again
    assert [key for key, *_ in publisher.sent] == [RATED, RATED, RATED]
    assert publisher.sent[0][1] == publisher.sent[1][1] == publisher.sent[2][1]
    assert events_pb2.TransactionRated.FromString(publisher.sent[0][1]).rating == 4
    t, _ = tracker(stored(Status.COMPLETED, rating=3))
    with pytest.raises(AlreadyExists):
        await rate(t, 3)


async def test_a_rating_right_after_an_accepted_completion_is_taken() -> None:
    # The stored document lags the queue: the completion was answered OK and is not stored
    # yet. Judged against the document alone, the rating was refused "not completed".
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    await update(t, Status.COMPLETED)
    await rate(t, 5, CENTRE)
    assert events_pb2.TransactionRated.FromString(publisher.sent[-1][1]).rating == 5
    # A change accepted after the completion's cannot be; one before it is not a completion.
    t, _ = tracker(stored(Status.RECORDED))
    await update(t, Status.IN_PROGRESS)
    with pytest.raises(PreconditionFailed):
        await rate(t, 5)


async def test_a_rating_sends_its_unsent_completion_first_and_waits_while_it_cannot() -> None:
    # The completion was accepted and its publish failed. Published alone, the rating reached
    # the worker first, waited on its retry queue for the completion and was dead-lettered
    # when the completion had not come within that budget (about 3 minutes: an intake down,
    # or a broker refusing status changes, for longer than that).
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    publisher.unroutable = {STATUS_CHANGED}
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED)
    with pytest.raises(Unavailable, match="its completion is not sent yet"):
        await rate(t, 5, CENTRE)
    assert publisher.sent == []
    assert t.requests.ratings == {}  # type: ignore[attr-defined]  # nothing claimed
    publisher.unroutable = set()
    await rate(t, 5, CENTRE)
    assert [key for key, *_ in publisher.sent] == [STATUS_CHANGED, RATED]
    completion = events_pb2.TransactionStatusChanged.FromString(publisher.sent[0][1])
    assert completion.status == common_pb2.TRANSACTION_STATUS_COMPLETED


async def test_a_rating_sent_again_in_the_background_sends_its_unsent_completion_first() -> None:
    # A claim left by an intake that published ratings ahead of their completions: the
    # resends (and another intake's sweep of its note) put the completion first too.
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    publisher.unroutable = {STATUS_CHANGED}
    with pytest.raises(Unavailable):
        await update(t, Status.COMPLETED)
    publisher.unroutable = set()
    t.requests.ratings["T1"] = (4, T0, "centre")  # type: ignore[attr-defined]
    await t.send_rating("T1")
    await t.send_rating("T1")
    assert [key for key, *_ in publisher.sent] == [STATUS_CHANGED, RATED, RATED]


async def test_concurrent_different_ratings_leave_one() -> None:
    t, _ = tracker(stored(Status.COMPLETED))
    outcomes = await asyncio.gather(*(rate(t, n) for n in (1, 2, 3, 4, 5)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None)


async def test_a_rating_whose_publish_failed_is_sent_by_the_next_call_whatever_its_value() -> None:
    t, publisher = tracker(stored(Status.COMPLETED))
    publisher.down = True
    with pytest.raises(Unavailable):
        await rate(t, 4, CENTRE)
    publisher.down = False
    with pytest.raises(AlreadyExists):
        await rate(t, 2, CENTRE)
    await rate(t, 4, CENTRE)
    sent = publisher.decoded(events_pb2.TransactionRated)
    assert [(e.rating, e.actor) for e in sent] == [(4, "centre"), (4, "centre")]
    assert sent[0] == sent[1]
