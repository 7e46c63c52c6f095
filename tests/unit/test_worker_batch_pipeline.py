"""The batch worker judges a batch a chunk at a time and stores each chunk while the next is
judged: the same verdict as judging it whole, chunks stored in order, one at a time."""

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sanad.amqp.verdicts import TransientError
from sanad.domain.submissions import CenterView, ServiceView
from sanad.records import item_count
from sanad.registry_past import Dated
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from workers.batch.domain import Context, Verdict, judge_batch, judge_items
from workers.batch.handlers import BatchHandler
from workers.batch.refusals import Limits

NOW = datetime(2024, 6, 1, tzinfo=UTC)
CENTER = CenterView(
    id="C1",
    governorate_code="DA",
    wilayat_code="DA-NIZ",
    licence_status="ACTIVE",
    licence_expires_at=None,
    offered=frozenset({"ROP-VISA"}),
    blocked=frozenset(),
)
SERVICE = ServiceView("ROP-VISA", "ROP", 5000, 48, 1, True)


def context() -> Context:
    return Context(
        batch_key="b-1",
        center_id="C1",
        submitted_by="batch-user",
        started_at=NOW,
        centers={"C1": CENTER},
        services={"ROP-VISA": SERVICE},
        secret=b"s",
        may_submit_for=lambda center_id: False,
    )


def batch(live: int, history: int = 0) -> events_pb2.BatchSubmission:
    """Every third live item names an unknown service; every history item is a completed one."""
    submission = events_pb2.BatchSubmission(batch_id="b-1", center_id="C1")
    for n in range(live):
        submission.items.append(
            intake_pb2.SubmitTransactionRequest(
                request_id=f"r-{n}",
                service_code="NOPE" if n % 3 == 2 else "ROP-VISA",
                fee_baisa=5000,
                beneficiary_civil_number=f"{10_000_000 + n}",
            )
        )
    for n in range(history):
        item = submission.history_items.add()
        item.transaction.CopyFrom(
            intake_pb2.SubmitTransactionRequest(
                request_id=f"h-{n}",
                service_code="ROP-VISA",
                fee_baisa=5000,
                beneficiary_civil_number=f"{20_000_000 + n}",
            )
        )
        item.submit_time.FromDatetime(NOW - timedelta(days=10))
        step = item.history.add(status=common_pb2.TRANSACTION_STATUS_COMPLETED)
        step.time.FromDatetime(NOW - timedelta(days=9))
    return submission


def test_judging_in_consecutive_ranges_gives_the_verdict_of_judging_whole() -> None:
    submission = batch(live=10, history=4)
    whole = judge_batch(submission, context(), NOW)
    pieces = [
        judge_items(submission, context(), NOW, range(s, min(s + 3, 14))) for s in (0, 3, 6, 9, 12)
    ]
    joined = pieces[0]
    for piece in pieces[1:]:
        joined.extend(piece)

    assert item_count(submission) == 14
    assert joined.accepted == whole.accepted
    assert joined.rejected == whole.rejected
    assert [index for index, _ in whole.rejected] == [2, 5, 8]
    # History items follow the live ones in the same index space.
    assert [index for index, _ in whole.accepted][-4:] == [10, 11, 12, 13]
    assert whole.documents == [doc for _, doc in whole.accepted]


class RecordingStore:
    """BatchStore's store_chunk: records what it stored, and holds each chunk's transaction
    open until the next chunk's judging has started, so the two visibly overlap."""

    def __init__(self, chunks: int, fail_on_chunk: int | None = None) -> None:
        self.judging_started = [threading.Event() for _ in range(chunks)]
        self.fail_on_chunk = fail_on_chunk
        self.stored: list[list[str]] = []
        self.log: list[tuple[str, int]] = []
        self.started = 0
        self.storing = 0
        self.most_at_once = 0

    def judge(self, *args: Any) -> Verdict:
        """judge_items, logging when each chunk's judging starts."""
        number = sum(1 for kind, _ in self.log if kind == "judging")
        self.log.append(("judging", number))
        self.judging_started[number].set()
        return judge_items(*args)

    async def request_records(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return []

    async def store_chunk(
        self, documents: Sequence[dict[str, Any]], requests: Sequence[dict[str, Any]] = ()
    ) -> int:
        number = self.started
        self.started += 1
        self.storing += 1
        self.most_at_once = max(self.most_at_once, self.storing)
        try:
            if number + 1 < len(self.judging_started):
                following = self.judging_started[number + 1]
                assert await asyncio.to_thread(following.wait, 5), "the next chunk was not judged"
            if number == self.fail_on_chunk:
                raise TransientError("the database went away")
            self.stored.append([doc["_id"] for doc in documents])
            self.log.append(("stored", number))
            return len(documents)
        finally:
            self.storing -= 1


class Snapshot:
    def __init__(self) -> None:
        self.centers = {"C1": CENTER}
        self.services = {"ROP-VISA": SERVICE}
        self.ready = True
        self.places: dict[str, tuple[Dated[CenterView], ...]] = {}
        self.terms: dict[str, tuple[Dated[ServiceView], ...]] = {}


def handler(store: RecordingStore, chunk: int, monkeypatch: pytest.MonkeyPatch) -> BatchHandler:
    monkeypatch.setattr("workers.batch.handlers.judge_items", store.judge)

    async def reply(*_: object) -> None:
        return None

    return BatchHandler(
        store,  # type: ignore[arg-type]
        Snapshot(),
        reply,
        b"s",
        Limits(chunk=chunk),
        may_submit=lambda user, center: True,
        may_migrate=lambda user: True,
    )


async def test_chunks_are_stored_in_order_one_at_a_time_while_the_next_is_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RecordingStore(chunks=3)
    submission = batch(live=12)

    verdict = await handler(store, 4, monkeypatch)._judge_and_store(submission, context(), True)

    whole = judge_batch(submission, context(), NOW)
    assert verdict.accepted == whole.accepted
    assert verdict.rejected == whole.rejected
    assert store.stored == [
        [doc["_id"] for index, doc in whole.accepted if low <= index < low + 4] for low in (0, 4, 8)
    ]
    assert store.most_at_once == 1
    # Every chunk after the first was judged while the one before it was being stored.
    assert store.log == [
        ("judging", 0),
        ("judging", 1),
        ("stored", 0),
        ("judging", 2),
        ("stored", 1),
        ("stored", 2),
    ]


async def test_a_failed_chunk_fails_the_batch_and_leaves_no_store_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RecordingStore(chunks=3, fail_on_chunk=1)

    with pytest.raises(TransientError):
        await handler(store, 4, monkeypatch)._judge_and_store(batch(live=12), context(), True)

    assert len(store.stored) == 1
    assert store.storing == 0


async def test_a_chunk_with_nothing_accepted_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RecordingStore(chunks=1)
    submission = events_pb2.BatchSubmission(batch_id="b-1", center_id="C1")
    submission.items.append(
        intake_pb2.SubmitTransactionRequest(request_id="r", service_code="NOPE")
    )

    verdict = await handler(store, 4, monkeypatch)._judge_and_store(submission, context(), True)

    assert [index for index, _ in verdict.rejected] == [0]
    assert store.stored == []


def test_an_item_for_another_centre_is_refused_unless_its_submitter_may_submit_there() -> None:
    submission = batch(live=1)
    submission.items[0].center_id = "C2"
    centers = {"C1": CENTER, "C2": replace(CENTER, id="C2")}
    refused = judge_batch(submission, replace(context(), centers=centers), NOW)
    allowed = replace(context(), centers=centers, may_submit_for=lambda c: c == "C2")

    assert [(i, [v.field for v in found]) for i, found in refused.rejected] == [(0, ["center_id"])]
    assert [doc["center_id"] for _, doc in judge_batch(submission, allowed, NOW).accepted] == ["C2"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "description"),
    [
        (10**12, 0, "is not a valid time"),
        (0, 2_000_000_000, "is not a valid time"),
        (int((NOW + timedelta(days=1)).timestamp()), 0, "is later than the batch's arrival"),
        # Before 1970 its id counted time backwards and sorted after every other id.
        (-62135596800, 0, "is 0001-01-01T00:00:00Z, before 2000: statistics cover 2000 to 2100"),
        (-1, 0, "is 1969-12-31T23:59:59Z, before 2000: statistics cover 2000 to 2100"),
        (
            0,
            0,
            "is the Unix epoch (a time left at zero?), before 2000: statistics cover 2000 to 2100",
        ),
        (
            946684799,
            999_999_999,
            "is 1999-12-31T23:59:59.999999Z, before 2000: statistics cover 2000 to 2100",
        ),
    ],
)
def test_a_history_item_time_out_of_range_or_in_the_future_is_refused_by_field(
    seconds: int, nanos: int, description: str
) -> None:
    on_submit, on_step = batch(live=0, history=1), batch(live=0, history=1)
    on_submit.history_items[0].submit_time.seconds = seconds
    on_submit.history_items[0].submit_time.nanos = nanos
    on_step.history_items[0].history[0].time.seconds = seconds
    on_step.history_items[0].history[0].time.nanos = nanos

    for submission, field_name in ((on_submit, "submit_time"), (on_step, "history[0].time")):
        verdict = judge_batch(submission, context(), NOW)
        assert not verdict.accepted
        assert [(v.field, v.description) for v in verdict.rejected[0][1]] == [
            (field_name, description)
        ]


def test_history_from_the_first_day_of_2000_on_is_taken() -> None:
    submission = batch(live=0, history=1)
    submission.history_items[0].submit_time.FromDatetime(datetime(2000, 1, 1, tzinfo=UTC))
    submission.history_items[0].history[0].time.FromDatetime(datetime(2000, 1, 2, tzinfo=UTC))

    verdict = judge_batch(submission, context(), NOW)

    assert not verdict.rejected
    [(_, document)] = verdict.accepted
    assert document["submit_time"] == datetime(2000, 1, 1, tzinfo=UTC)


class StoredBefore(RecordingStore):
    """An earlier attempt stored these transaction ids."""

    def __init__(self, stored: set[str]) -> None:
        super().__init__(chunks=1)
        self.before = stored

    async def stored_ids(self, ids: Sequence[str]) -> set[str]:
        return self.before & set(ids)


async def test_an_attempt_after_a_failed_one_answers_items_stored_before_as_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submission = batch(live=2, history=1)
    first = judge_batch(submission, context(), NOW)
    assert [index for index, _ in first.accepted] == [0, 1, 2]
    # Since the first attempt stored them, the centre lost its licence and the service retired.
    later = replace(context(), centers={}, services={})
    store = StoredBefore({doc["_id"] for _, doc in first.accepted})

    again = await handler(store, 4, monkeypatch)._judge_and_store(submission, later, False)
    fresh = await handler(StoredBefore(set()), 4, monkeypatch)._judge_and_store(
        submission, later, True
    )

    assert again.transaction_ids == [(index, doc["_id"]) for index, doc in first.accepted]
    assert not again.rejected
    assert not again.accepted  # nothing stored a second time
    assert [index for index, _ in fresh.rejected] == [0, 1, 2]
