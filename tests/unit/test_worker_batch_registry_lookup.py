"""Batch items the worker's registry copy refuses for the registry's state are judged again
against the registry as it is now: a centre activated, a service offered or published a moment
before the batch was sent does not refuse its items (workers/batch/handlers.py, _judged_again)."""

import dataclasses
from dataclasses import dataclass, field

import pytest

from sanad.domain.submissions import CenterView, ServiceView
from sanad.registry_lookup import UNANSWERED, Unanswered
from tests.unit.test_worker_batch_answers import (
    CENTER,
    SERVICE,
    MemoryStore,
    Replies,
    Shared,
    Snapshot,
    batch,
    message,
)
from workers.batch.handlers import BatchHandler
from workers.batch.refusals import Limits

Answer = CenterView | ServiceView | None | Unanswered


@dataclass
class FakeLookup:
    """The registry now, by centre id and service code (absent: UNANSWERED); counts the
    questions."""

    centers: dict[str, CenterView | None] = field(default_factory=lambda: {"C1": CENTER})
    services: dict[str, ServiceView | None] = field(default_factory=lambda: {"ROP-VISA": SERVICE})
    asked: list[str] = field(default_factory=list)
    callers: set[str] = field(default_factory=set)

    async def center(
        self, center_id: str, timeout_s: float, caller: str
    ) -> CenterView | Unanswered | None:
        self.callers.add(caller)
        self.asked.append(center_id)
        return self.centers.get(center_id, UNANSWERED)

    async def service(
        self, code: str, timeout_s: float, caller: str
    ) -> ServiceView | Unanswered | None:
        self.callers.add(caller)
        self.asked.append(code)
        return self.services.get(code, UNANSWERED)


def worker(
    snapshot: Snapshot, lookup: FakeLookup | None, shared: Shared, replies: Replies
) -> BatchHandler:
    return BatchHandler(
        MemoryStore(shared),  # type: ignore[arg-type]
        snapshot,
        replies,
        b"s",
        Limits(chunk=2),
        may_submit=lambda user, center_id: center_id == "C1",
        may_migrate=lambda user: True,
        lookup=lookup,
    )


LAGGING = {
    # The registry answered each change; the copy still has the state before it.
    "activated a moment ago": Snapshot(
        {"C1": dataclasses.replace(CENTER, licence_status="PENDING")}, {"ROP-VISA": SERVICE}
    ),
    "registered a moment ago": Snapshot({}, {"ROP-VISA": SERVICE}),
    "offered a moment ago": Snapshot(
        {"C1": dataclasses.replace(CENTER, offered=frozenset())}, {"ROP-VISA": SERVICE}
    ),
    "published a moment ago": Snapshot({"C1": CENTER}, {}),
    "fee changed a moment ago": Snapshot(
        {"C1": CENTER}, {"ROP-VISA": dataclasses.replace(SERVICE, fee_baisa=4000)}
    ),
}


@pytest.mark.parametrize("change", LAGGING)
async def test_a_change_the_copy_has_not_brought_yet_refuses_no_item(change: str) -> None:
    shared, replies, lookup = Shared(), Replies(), FakeLookup()
    handler = worker(LAGGING[change], lookup, shared, replies)

    assert await handler.handle(message(batch("r-1", "r-2", "r-3", "r-4", "r-5"))) is None

    result = replies.sent[0][1]
    assert [item.index for item in result.accepted] == [0, 1, 2, 3, 4]
    assert not result.rejected
    assert len(shared.transactions) == 5
    # Asked once, by the first chunk: the later chunks are judged with the registry's answer.
    assert lookup.asked == ["C1", "ROP-VISA"]
    # For the batch's submitter, out of its own share of the worker's questions.
    assert lookup.callers == {"amqp:guest"}


async def test_without_the_lookup_the_copy_refuses_them() -> None:
    # What the test above guards against.
    shared, replies = Shared(), Replies()
    handler = worker(LAGGING["activated a moment ago"], None, shared, replies)
    assert await handler.handle(message(batch("r-1", "r-2"))) is None
    assert len(replies.sent[0][1].rejected) == 2
    assert not shared.transactions


@pytest.mark.parametrize(
    ("lookup", "why"),
    [
        (FakeLookup({"C1": None}), "centre 'C1' not found"),
        (
            FakeLookup({"C1": dataclasses.replace(CENTER, licence_status="SUSPENDED")}),
            "has no active licence",
        ),
    ],
)
async def test_the_registry_now_is_the_judge_when_it_differs(lookup: FakeLookup, why: str) -> None:
    # The copy's own refusal is another: "does not offer".
    copy = Snapshot({"C1": dataclasses.replace(CENTER, offered=frozenset())}, {"ROP-VISA": SERVICE})
    shared, replies = Shared(), Replies()
    await worker(copy, lookup, shared, replies).handle(message(batch("r-1", "r-2")))
    rejected = replies.sent[0][1].rejected
    assert [item.index for item in rejected] == [0, 1]
    assert all(why in item.violations[0].description for item in rejected)
    assert not shared.transactions


@pytest.mark.parametrize("answer", ["agrees", "silent"])
async def test_the_refusals_stand_when_the_registry_agrees_or_does_not_answer(answer: str) -> None:
    suspended = dataclasses.replace(CENTER, licence_status="SUSPENDED")
    copy = Snapshot({"C1": suspended}, {"ROP-VISA": SERVICE})
    lookup = FakeLookup({"C1": suspended}) if answer == "agrees" else FakeLookup({}, {})
    shared, replies = Shared(), Replies()
    await worker(copy, lookup, shared, replies).handle(message(batch("r-1", "r-2", "r-3")))
    result = replies.sent[0][1]
    assert not result.accepted
    assert len(result.rejected) == 3
    assert "has no active licence" in result.rejected[0].violations[0].description
    assert not shared.transactions
    # Each chunk asks (the answer is kept by the lookup itself, sanad/registry_lookup).
    assert lookup.asked == ["C1", "ROP-VISA", "C1", "ROP-VISA"]


async def test_items_bad_in_themselves_or_not_the_submitters_ask_nothing() -> None:
    lookup = FakeLookup()
    shared, replies = Shared(), Replies()
    submission = batch("r-1", "r-2")
    submission.items[0].beneficiary_civil_number = "12"
    submission.items[1].center_id = "C2"  # another centre's, which this submitter may not use
    await worker(Snapshot({}, {}), lookup, shared, replies).handle(message(submission))
    assert len(replies.sent[0][1].rejected) == 2
    assert lookup.asked == []


async def test_only_the_refused_items_are_judged_again_and_answers_keep_their_order() -> None:
    # Items 0 and 2 name a service the copy lacks; 1 and 3 one it has.
    center = dataclasses.replace(CENTER, offered=OFFERED)
    lookup = FakeLookup({"C1": center}, {"ROP-VISA": SERVICE, "MOL-PERMIT": SERVICE_2})
    copy = Snapshot({"C1": center}, {"ROP-VISA": SERVICE})
    submission = batch("r-1", "r-2", "r-3", "r-4")
    for index in (0, 2):
        submission.items[index].service_code = "MOL-PERMIT"
        submission.items[index].fee_baisa = SERVICE_2.fee_baisa
    shared, replies = Shared(), Replies()
    await worker(copy, lookup, shared, replies).handle(message(submission))
    result = replies.sent[0][1]
    assert [item.index for item in result.accepted] == [0, 1, 2, 3]
    assert len(shared.transactions) == 4
    # Asked by the first chunk; the second judged item 2 with the answer.
    assert lookup.asked == ["C1", "MOL-PERMIT"]


SERVICE_2 = ServiceView("MOL-PERMIT", "MOL", 2000, 24, 1, True)
OFFERED = frozenset({"ROP-VISA", "MOL-PERMIT"})
