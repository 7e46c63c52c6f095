"""Reading rules: who reads which transactions, watching, page tokens, the deadline's margin, and
how a stored transaction is shown."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.errors import Invalid, NotFound, PermissionDenied, Unavailable
from sanad.records import proto_from_document
from sanad.security.identity import DEV_ADMIN
from services.intake.listing import ListQuery, decode_token, encode_token, page_size
from services.intake.reading import DeadlineReached, Reader
from tests.unit.intake_tracking_fakes import CENTRE, MOL, OTHER_CENTRE, ROP, T0, FakeStore, stored


async def test_centres_read_only_their_own_transactions() -> None:
    t = Reader(FakeStore(stored()))
    assert (await t.get("T1", CENTRE, Deadline(None)))["_id"] == "T1"
    assert (await t.get("T1", ROP, Deadline(None)))["_id"] == "T1"
    # Another centre's or agency's transaction is answered as an id that names nothing.
    for who in (OTHER_CENTRE, MOL):
        with pytest.raises(NotFound, match=r"^transaction 'T1' not found$"):
            await t.get("T1", who, Deadline(None))
        with pytest.raises(NotFound, match=r"^transaction 'T1' not found$"):
            await anext(t.watch("T1", who, Deadline(5.0), poll_s=0.01))
        with pytest.raises(NotFound, match=r"^transaction 'T9' not found$"):
            await t.get("T9", who, Deadline(None))
    with pytest.raises(PermissionDenied):
        await t.list(ListQuery(center_id="C1"), OTHER_CENTRE, Deadline(None))
    docs, more = await t.list(ListQuery(center_id=""), CENTRE, Deadline(None))
    assert ([d["_id"] for d in docs], more) == (["T1"], False)


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


async def test_an_open_watch_ends_at_once_when_the_service_begins_to_drain() -> None:
    # Before, a watch polled on through the whole shutdown grace (11.9 s against 1.3 s without
    # one open) and ended "Cancelling all calls"; now it is told to watch again elsewhere.
    t = Reader(FakeStore(stored(Status.RECORDED)))
    watching = t.watch("T1", DEV_ADMIN, Deadline(None), poll_s=3600.0)
    assert (await anext(watching))["status"] == "RECORDED"
    waiting = asyncio.create_task(anext(watching))
    await asyncio.sleep(0.01)
    t.close()  # as the server's drain begins
    with pytest.raises(Unavailable, match="shutting down; watch the transaction again"):
        async with asyncio.timeout(2):
            await waiting


class GivesUpForTime(FakeStore):
    """PyMongo's answer to a read with less time left than a round trip: a timeout at once."""

    def __init__(self, now: list[float], *docs: dict[str, Any]) -> None:
        super().__init__(*docs)
        self.now = now
        self.failing = False

    async def get_transaction(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        if self.failing:
            raise Unavailable("the database did not answer in time; retry later")
        return await super().get_transaction(transaction_id, timeout_s)


@pytest.mark.parametrize(("left_s", "ends"), [(0.02, "DEADLINE_EXCEEDED"), (0.5, "UNAVAILABLE")])
async def test_a_watchs_read_that_fails_for_time_near_the_deadline_is_the_deadline(
    left_s: float, ends: str
) -> None:
    now = [100.0]
    store = GivesUpForTime(now, stored(Status.RECORDED))
    deadline = Deadline(10.0, clock=lambda: now[0])
    watch = Reader(store).watch("T1", DEV_ADMIN, deadline, poll_s=0)
    assert (await anext(watch))["status"] == "RECORDED"
    left = deadline.left()
    assert left is not None
    now[0] += left - left_s  # the next read begins with left_s to go, and gives up at once
    store.failing = True
    with pytest.raises((DeadlineReached, Unavailable)) as ended:
        await anext(watch)
    assert {DeadlineReached: "DEADLINE_EXCEEDED", Unavailable: "UNAVAILABLE"}[ended.type] == ends


def test_page_tokens_round_trip_and_refuse_forgeries() -> None:
    query = ListQuery(center_id="C1")
    assert decode_token(query, encode_token(query, stored())) == (T0, "T1")
    with pytest.raises(Invalid):
        decode_token(query, "not-a-token")
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


async def test_a_watch_whose_call_is_over_ends_at_its_next_poll() -> None:
    # The same for intake's watch of a transaction that does not change.
    store = FakeStore(stored())
    over = False
    watch = Reader(store).watch("T1", DEV_ADMIN, Deadline(30.0), 0.005, lambda: over)
    first = await anext(watch)
    assert first["_id"] == "T1"
    waiting = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    over = True
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
