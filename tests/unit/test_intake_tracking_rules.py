"""Tracking rules: status changes, cancelling and rating are checked against the stored document."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sanad.amqp.topology import RATED, STATUS_CHANGED, Topology
from sanad.domain.transactions import Status
from sanad.errors import (
    AlreadyExists,
    Invalid,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unavailable,
)
from sanad.records import proto_from_document
from sanad.security.carried import CarriedEvent
from sanad.security.identity import DEV_ADMIN, Identity, Role
from sanad.v1 import common_pb2, events_pb2
from services.intake.deadline import Deadline
from services.intake.listing import ListQuery, decode_token, encode_token, page_size
from services.intake.reading import Reader
from services.intake.status_changes import MAX_CHANGE_ATTEMPTS
from services.intake.tracking import Change, Tracker
from tests.unit.fakes import RecordingPublisher

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
ROP = Identity("rop-system", Role.MINISTRY, agency_code="ROP")
MOL = Identity("mol-system", Role.MINISTRY, agency_code="MOL")
CENTRE = Identity("abraj", Role.CENTRE, center_id="C1")
OTHER_CENTRE = Identity("nizwa", Role.CENTRE, center_id="C2")


def stored(status: Status = Status.RECORDED, **extra: Any) -> dict[str, Any]:
    doc = {
        "_id": "T1",
        "request_id": "r-1",
        "center_id": "C1",
        "service_code": "ROP-VISA",
        "agency_code": "ROP",
        "service_version": 1,
        "channel": "COUNTER",
        "fee_baisa": 5000,
        "beneficiary_masked": "*****678",
        "submit_time": T0,
        "status": status.value,
        "history": [{"status": "SUBMITTED", "time": T0}, {"status": status.value, "time": T0}],
        "rating": 0,
    }
    doc.update(extra)
    return doc


class AuditCollection:
    """The audit events accepted changes carried in (stored: their transactions commit)."""

    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []

    async def insert_one(self, document: dict[str, Any], session: Any) -> None:
        self.stored.append(document)


class Transaction:
    """A session whose transaction commits unless aborted (the fake's writes are applied by
    the time they return, and only when they accept: an aborted try wrote nothing)."""

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        yield

    async def start_transaction(self) -> Any:
        return self._running()

    async def abort_transaction(self) -> None:
        return None


class FakeStore:
    """Intake's two stores in one: the stored transactions and intake's own records."""

    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {d["_id"]: d for d in docs}
        self.ratings: dict[str, tuple[int, datetime, str]] = {}
        self.timeouts: list[float | None] = []
        self.changes: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.audit_log = AuditCollection()
        self.attempts = 0  # tries to accept a change

    async def get_transaction(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        self.timeouts.append(timeout_s)
        await asyncio.sleep(0)
        return self.docs.get(transaction_id)

    async def list_transactions(self, query: ListQuery, timeout_s: float | None = None) -> Any:
        return [d for d in self.docs.values() if d["center_id"] == query.center_id]

    async def claim_rating(
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
        *,
        event: CarriedEvent | None = None,
    ) -> tuple[int, datetime, str]:
        return self.ratings.setdefault(transaction_id, (rating, given, actor))

    async def latest_change(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        await asyncio.sleep(0)  # lets concurrent changes interleave, as round trips do
        found = self.changes.get(transaction_id)
        return None if found is None else dict(found)

    def carried_event(self) -> CarriedEvent:
        return CarriedEvent(self.audit_log, {})  # type: ignore[arg-type]

    async def accept_change(
        self,
        transaction_id: str,
        previous: int,
        record: dict[str, Any],
        timeout_s: Any = None,
        *,
        answer: dict[str, Any] | None = None,
        event: CarriedEvent | None = None,
    ) -> bool:
        self.attempts += 1

        def writes(_: Any) -> Awaitable[bool]:
            return self._accept(transaction_id, previous, record, answer)

        if event is None:
            return await writes(None)
        return await event.attempt(Transaction(), writes)  # type: ignore[arg-type]

    async def _accept(
        self,
        transaction_id: str,
        previous: int,
        record: dict[str, Any],
        answer: dict[str, Any] | None,
    ) -> bool:
        await asyncio.sleep(0)
        if self.changes.get(transaction_id, {}).get("sequence", 0) != previous:
            return False
        if answer is not None:  # both or neither, as in one MongoDB transaction
            if answer["_id"] in self.answers:
                return False
            self.answers[answer["_id"]] = dict(answer)
        self.changes[transaction_id] = dict(record)
        return True

    async def find_change_request(self, key: str, timeout_s: Any = None) -> Any:
        await asyncio.sleep(0)
        found = self.answers.get(key)
        return None if found is None else dict(found)

    async def confirm_change(
        self, transaction_id: str, sequence: int, timeout_s: Any = None
    ) -> None:
        if self.changes[transaction_id]["sequence"] == sequence:
            self.changes[transaction_id]["confirmed"] = True


def tracker(*docs: dict[str, Any]) -> tuple[Tracker, RecordingPublisher]:
    store, publisher = FakeStore(*docs), RecordingPublisher()
    return Tracker(store, store, publisher, Topology("t")), publisher


async def update(t: Tracker, status: Status | None, who: Identity = DEV_ADMIN) -> Any:
    return await t.update_status(
        "T1", status, "note", actor="agency", identity=who, deadline=Deadline(5.0)
    )


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Status.COMPLETED, Status.IN_PROGRESS),
        (Status.REJECTED, Status.COMPLETED),
        (Status.CANCELLED, Status.IN_PROGRESS),
        (Status.AWAITING_DOCUMENTS, Status.COMPLETED),
        (Status.AWAITING_AGENCY, Status.AWAITING_DOCUMENTS),
        (Status.IN_PROGRESS, Status.IN_PROGRESS),
    ],
)
async def test_illegal_status_transitions_are_refused(current: Status, new: Status) -> None:
    t, publisher = tracker(stored(current))
    with pytest.raises(PreconditionFailed):
        await update(t, new)
    assert publisher.sent == []


@pytest.mark.parametrize("status", [None, Status.CANCELLED, Status.RECORDED, Status.SUBMITTED])
async def test_an_agency_reports_only_reportable_statuses(status: Status | None) -> None:
    t, _ = tracker(stored())
    with pytest.raises(Invalid) as caught:
        await update(t, status)
    assert [v.field for v in caught.value.violations] == ["status"]


async def test_a_legal_change_is_published_with_a_new_change_id() -> None:
    t, publisher = tracker(stored(Status.IN_PROGRESS))
    change = await update(t, Status.AWAITING_DOCUMENTS)
    assert (change.status, change.actor, change.note) == (
        Status.AWAITING_DOCUMENTS,
        "agency",
        "note",
    )
    await update(t, Status.IN_PROGRESS)  # judged against the accepted AWAITING_DOCUMENTS
    (key, body, kind, timeout), (_, body2, _, _) = publisher.sent
    event = events_pb2.TransactionStatusChanged.FromString(body)
    assert (key, kind) == (STATUS_CHANGED, "sanad.v1.TransactionStatusChanged")
    assert event.transaction_id == "T1"
    assert event.status == common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS
    assert event.change_id != events_pb2.TransactionStatusChanged.FromString(body2).change_id
    # Within the publisher's own confirm limit, not the caller's: the publish is every
    # concurrent retry's (services/intake/sending.py); each caller waits within its deadline.
    assert timeout is None


async def test_only_the_owning_agency_updates() -> None:
    t, _ = tracker(stored())
    await update(t, Status.IN_PROGRESS, ROP)
    for who in (MOL, CENTRE):
        with pytest.raises(PermissionDenied):
            await update(t, Status.IN_PROGRESS, who)


async def test_an_unknown_transaction_is_not_found() -> None:
    t, _ = tracker()
    with pytest.raises(NotFound):
        await update(t, Status.IN_PROGRESS)


async def test_a_finished_transaction_cannot_be_cancelled() -> None:
    for status in (Status.COMPLETED, Status.REJECTED, Status.CANCELLED):
        t, _ = tracker(stored(status))
        with pytest.raises(PreconditionFailed):
            await t.cancel("T1", "r", actor="a", identity=DEV_ADMIN, deadline=Deadline(None))
    t, publisher = tracker(stored(Status.AWAITING_AGENCY))
    change = await t.cancel("T1", "asked", actor="a", identity=CENTRE, deadline=Deadline(None))
    assert change.status is Status.CANCELLED
    assert len(publisher.sent) == 1
    with pytest.raises(PermissionDenied):
        await t.cancel("T1", "", actor="a", identity=OTHER_CENTRE, deadline=Deadline(None))


async def rate(t: Tracker, rating: int, who: Identity = DEV_ADMIN) -> None:
    await t.rate("T1", rating, actor="centre", identity=who, deadline=Deadline(None))


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


async def test_concurrent_different_ratings_leave_one() -> None:
    t, _ = tracker(stored(Status.COMPLETED))
    outcomes = await asyncio.gather(*(rate(t, n) for n in (1, 2, 3, 4, 5)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None)


async def test_a_broker_outage_reaches_the_caller_as_unavailable() -> None:
    t, publisher = tracker(stored())
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.IN_PROGRESS)


async def test_centres_read_only_their_own_transactions() -> None:
    t = Reader(FakeStore(stored()))
    assert (await t.get("T1", CENTRE, Deadline(None)))["_id"] == "T1"
    assert (await t.get("T1", ROP, Deadline(None)))["_id"] == "T1"
    for who in (OTHER_CENTRE, MOL):
        with pytest.raises(PermissionDenied):
            await t.get("T1", who, Deadline(None))
    with pytest.raises(PermissionDenied):
        await t.list(ListQuery(center_id="C1"), OTHER_CENTRE, Deadline(None))
    docs, token = await t.list(ListQuery(center_id=""), CENTRE, Deadline(None))
    assert ([d["_id"] for d in docs], token) == (["T1"], "")


async def test_watch_streams_each_change_and_stops_when_finished() -> None:
    doc = stored(Status.RECORDED)
    t = Reader(FakeStore(doc))
    seen: list[str] = []

    async def worker() -> None:
        for status in (Status.IN_PROGRESS, Status.COMPLETED):
            await asyncio.sleep(0.03)
            doc["history"] = [*doc["history"], {"status": status.value, "time": T0}]
            doc["status"] = status.value

    writer = asyncio.create_task(worker())
    async for current in t.watch("T1", DEV_ADMIN, Deadline(5.0), poll_s=0.005):
        seen.append(current["status"])
    await writer
    assert seen == ["RECORDED", "IN_PROGRESS", "COMPLETED"]


def test_page_tokens_round_trip_and_refuse_forgeries() -> None:
    assert decode_token(encode_token(stored())) == (T0, "T1")
    with pytest.raises(Invalid):
        decode_token("not-a-token")
    assert (page_size(0), page_size(10), page_size(10_000)) == (50, 10, 500)
    with pytest.raises(Invalid):
        page_size(-1)


def test_the_deadline_keeps_a_margin_and_never_goes_negative() -> None:
    now = [100.0]
    deadline = Deadline(2.0, clock=lambda: now[0])
    assert deadline.left() == pytest.approx(1.9)
    now[0] += 5
    assert deadline.left() == 0.0
    assert Deadline(None).left() is None


@pytest.mark.parametrize(
    ("status", "refund"),
    [
        (Status.CANCELLED, True),
        (Status.REJECTED, True),
        (Status.COMPLETED, False),
        (Status.IN_PROGRESS, False),
    ],
)
def test_a_cancelled_or_rejected_fee_shows_as_due_for_refund(status: Status, refund: bool) -> None:
    shown = proto_from_document(stored(status), T0 + timedelta(hours=1))
    assert shown.fee_baisa == 5000
    assert shown.fee_refund_due is refund


def test_the_sla_clock_excludes_paused_intervals() -> None:
    hour = timedelta(hours=1)
    steps = [
        ("SUBMITTED", T0),
        ("RECORDED", T0),
        ("IN_PROGRESS", T0 + hour),
        ("AWAITING_DOCUMENTS", T0 + 2 * hour),
        ("IN_PROGRESS", T0 + 5 * hour),
        ("AWAITING_AGENCY", T0 + 6 * hour),
        ("IN_PROGRESS", T0 + 8 * hour),
        ("COMPLETED", T0 + 9 * hour),
    ]
    doc = stored(
        Status.COMPLETED,
        history=[{"status": s, "time": t} for s, t in steps],
        finish_time=steps[-1][1],
    )
    shown = proto_from_document(doc, T0 + 100 * hour)
    assert shown.paused_seconds == 5 * 3600
    assert shown.sla_elapsed_seconds == 4 * 3600


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


async def test_each_change_is_judged_against_the_latest_accepted_and_numbered() -> None:
    t, publisher = tracker(stored(Status.RECORDED))  # the stored document never moves here
    await update(t, Status.AWAITING_DOCUMENTS)
    with pytest.raises(PreconditionFailed):
        await update(t, Status.COMPLETED)  # AWAITING_DOCUMENTS -> COMPLETED is illegal
    await update(t, Status.IN_PROGRESS)
    await update(t, Status.COMPLETED)
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert [(e.sequence, e.status) for e in sent] == [
        (1, common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS),
        (2, common_pb2.TRANSACTION_STATUS_IN_PROGRESS),
        (3, common_pb2.TRANSACTION_STATUS_COMPLETED),
    ]
    times = [e.time.ToDatetime() for e in sent]
    assert times == sorted(times)
    assert len(set(times)) == 3


async def test_concurrent_changes_take_distinct_sequence_numbers_in_a_legal_order() -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    outcomes = await asyncio.gather(
        update(t, Status.IN_PROGRESS), update(t, Status.COMPLETED), return_exceptions=True
    )
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert sorted(e.sequence for e in sent) == list(range(1, len(sent) + 1))
    assert all(isinstance(o, Change | PreconditionFailed) for o in outcomes)
    assert len(sent) == sum(isinstance(o, Change) for o in outcomes) >= 1


async def test_an_accepted_change_whose_publish_failed_is_sent_before_the_next() -> None:
    t, publisher = tracker(stored(Status.RECORDED))
    publisher.down = True
    with pytest.raises(Unavailable):
        await update(t, Status.IN_PROGRESS)
    publisher.down = False
    await update(t, Status.COMPLETED)  # judged against the accepted IN_PROGRESS
    sent = publisher.decoded(events_pb2.TransactionStatusChanged)
    assert [(e.sequence, e.status) for e in sent] == [
        (1, common_pb2.TRANSACTION_STATUS_IN_PROGRESS),
        (2, common_pb2.TRANSACTION_STATUS_COMPLETED),
    ]


async def test_a_change_that_loses_every_try_is_unavailable_and_says_why() -> None:
    class AlwaysConflicting(FakeStore):
        """Every compare-and-set lost: a concurrent change, or a write conflict of its
        transaction, came first each time."""

        async def accept_change(self, *args: Any, **kwargs: Any) -> bool:
            self.attempts += 1
            return False

    store, publisher = AlwaysConflicting(stored(Status.RECORDED)), RecordingPublisher()
    t = Tracker(store, store, publisher, Topology("t"))
    with pytest.raises(Unavailable, match="lost 5 tries to concurrent changes or database write"):
        await update(t, Status.IN_PROGRESS)
    assert store.attempts == MAX_CHANGE_ATTEMPTS
    assert publisher.sent == []
