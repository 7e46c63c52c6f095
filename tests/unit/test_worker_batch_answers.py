"""The batch handler answers a batch id once and truly: a resend with other content is refused,
two attempts at once save one answer that agrees with what is stored, items are counted once,
and answers go only to server-named reply queues."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from sanad.amqp.batches import SUBMISSION_TYPE
from sanad.amqp.metrics import BATCH_ITEMS
from sanad.amqp.verdicts import Dead, TransientError
from sanad.domain.clock import to_millisecond
from sanad.domain.submissions import CenterView, ServiceView
from sanad.registry_past import Dated
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from workers.batch.handlers import BatchHandler
from workers.batch.refusals import Limits

CENTER = CenterView("C1", "DA", "DA-NIZ", "ACTIVE", None, frozenset({"ROP-VISA"}), frozenset())
SERVICE = ServiceView("ROP-VISA", "ROP", 5000, 48, 1, True)
REPLY_TO = "amq.gen-Qx3_8vTn-wQ2pYz"


@dataclass
class Shared:
    """What the database holds: batch records and stored transaction ids."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: set[str] = field(default_factory=set)
    # Those of the transactions that are migrated (history items).
    migrated: set[str] = field(default_factory=set)
    # Records of request ids, by key (intake_requests).
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The audit events written: with a saved answer, or for a batch refused as a whole.
    audit_events: list[dict[str, Any]] = field(default_factory=list)


class MemoryStore:
    """BatchStore's contract in memory; several handlers may share one Shared, each with its
    own gates to hold it before storing or saving."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.failed_saves = 0
        self.before_store: asyncio.Event | None = None
        self.before_save: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def claim(
        self, batch_id: str, submitted_by: str, center_id: str, now: datetime, fingerprint: str
    ) -> tuple[dict[str, Any], bool]:
        if batch_id in self.shared.records:
            return dict(self.shared.records[batch_id]), False
        record = {
            "_id": batch_id,
            "submitted_by": submitted_by,
            "center_id": center_id,
            "started_at": to_millisecond(now),
            "fingerprint": fingerprint,
        }
        self.shared.records[batch_id] = record
        return dict(record), True

    async def stored_ids(self, ids: Sequence[str]) -> set[str]:
        return self.shared.transactions & set(ids)

    async def store_chunk(
        self, documents: Sequence[dict[str, Any]], requests: Sequence[dict[str, Any]] = ()
    ) -> int:
        await self._gate(self.before_store)
        if any(record["_id"] in self.shared.requests for record in requests):
            raise TransientError("a request id was claimed meanwhile")
        self.shared.requests |= {record["_id"]: dict(record) for record in requests}
        new = {doc["_id"] for doc in documents} - self.shared.transactions
        self.shared.transactions |= new
        self.shared.migrated |= {doc["_id"] for doc in documents if doc.get("migrated")}
        return len(new)

    async def request_records(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return [self.shared.requests[key] for key in keys if key in self.shared.requests]

    async def migrated_ids(self, ids: Sequence[str]) -> set[str]:
        return set(ids) & self.shared.migrated

    async def save_result(
        self, batch_id: str, result: bytes, accepted: int, rejected: int, event: dict[str, Any]
    ) -> bytes | None:
        await self._gate(self.before_save)
        if self.failed_saves:
            self.failed_saves -= 1
            raise TransientError("the database went away")
        record = self.shared.records[batch_id]
        if "result" in record:
            return bytes(record["result"])
        record["result"] = result
        self.shared.audit_events.append(event)
        return None

    async def record_refusal(self, event: dict[str, Any], redelivered: bool = False) -> None:
        self.shared.audit_events.append({**event, "redelivered": redelivered})

    async def replace_result(
        self, batch_id: str, old: bytes, new: bytes, accepted: int, rejected: int
    ) -> bool:
        record = self.shared.records[batch_id]
        if record.get("result") != old:
            return False
        record["result"] = new
        return True

    async def saved_result(self, batch_id: str) -> bytes:
        return bytes(self.shared.records[batch_id]["result"])

    async def _gate(self, gate: asyncio.Event | None) -> None:
        if gate is not None:
            self.waiting.set()
            await gate.wait()


@dataclass
class Snapshot:
    centers: dict[str, CenterView]
    services: dict[str, ServiceView]
    ready: bool = True
    places: dict[str, tuple[Dated[CenterView], ...]] = field(default_factory=dict)
    terms: dict[str, tuple[Dated[ServiceView], ...]] = field(default_factory=dict)


@dataclass
class Message:
    """The parts of an incoming AMQP message the handler reads."""

    body: bytes
    reply_to: str | None = REPLY_TO
    type: str = SUBMISSION_TYPE
    content_type: str | None = "application/x-protobuf"
    correlation_id: str = "c-1"
    user_id: str = "guest"
    message_id: str | None = None
    redelivered: bool = False


@dataclass
class Replies:
    sent: list[tuple[str, events_pb2.BatchResult]] = field(default_factory=list)

    async def __call__(self, reply_to: str, body: bytes, correlation: str, kind: str) -> None:
        self.sent.append((reply_to, events_pb2.BatchResult.FromString(body)))


def handler(store: MemoryStore, replies: Replies, center: CenterView = CENTER) -> BatchHandler:
    return BatchHandler(
        store,  # type: ignore[arg-type]
        Snapshot({"C1": center}, {"ROP-VISA": SERVICE}),
        replies,
        b"s",
        Limits(chunk=2),
        may_submit=lambda user, center_id: True,
        may_migrate=lambda user: True,
    )


def batch(*request_ids: str, batch_id: str = "b-1") -> events_pb2.BatchSubmission:
    items = [
        intake_pb2.SubmitTransactionRequest(
            request_id=request_id,
            service_code="ROP-VISA",
            channel=common_pb2.CHANNEL_COUNTER,
            fee_baisa=5000,
            beneficiary_civil_number=f"{90_000_000 + n}",
        )
        for n, request_id in enumerate(request_ids)
    ]
    return events_pb2.BatchSubmission(batch_id=batch_id, center_id="C1", items=items)


def message(submission: events_pb2.BatchSubmission, **changes: Any) -> Any:
    return Message(submission.SerializeToString(), **changes)


def counted(outcome: str) -> float:
    return BATCH_ITEMS.labels(outcome)._value.get()  # type: ignore[attr-defined]


async def test_a_batch_id_resent_with_other_content_is_refused_never_replayed() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(MemoryStore(shared), replies)
    assert await worker.handle(message(batch("r-1", "r-2"))) is None
    stored = set(shared.transactions)

    # Another --chunk, another file, or the same id for a new batch: other items under b-1.
    outcome = await worker.handle(message(batch("r-1", "r-2", "r-3")))
    unchanged = await worker.handle(message(batch("r-1", "r-2")))

    assert isinstance(outcome, Dead)
    assert outcome.reason == "batch-id-reused"
    refused = replies.sent[1][1]
    assert refused.refused_reason == outcome.detail
    assert "already used for a batch with other content" in refused.refused_reason
    assert not refused.accepted
    assert not refused.rejected
    assert shared.transactions == stored
    assert unchanged is None
    assert replies.sent[2][1] == replies.sent[0][1]


async def test_a_record_saved_before_fingerprints_is_answered_as_before() -> None:
    shared, replies = Shared(), Replies()
    worker = handler(MemoryStore(shared), replies)
    await worker.handle(message(batch("r-1")))
    del shared.records["b-1"]["fingerprint"]

    assert await worker.handle(message(batch("r-1", "r-2"))) is None

    assert replies.sent[1][1] == replies.sent[0][1]
    assert len(shared.transactions) == 1


@pytest.mark.parametrize(
    "reply_to",
    [
        "sanad.ingest",
        "t-abc.batch",
        "amq.gen-",
        "amq.gen-ok/../sanad.ingest",
        "amq.rabbitmq.reply-to",
        "x" * 300,
    ],
)
async def test_a_reply_to_that_is_not_server_named_is_neither_answered_nor_stored(
    reply_to: str,
) -> None:
    shared, replies = Shared(), Replies()

    outcome = await handler(MemoryStore(shared), replies).handle(
        message(batch("r-1"), reply_to=reply_to)
    )

    assert isinstance(outcome, Dead)
    assert outcome.reason == "bad-reply-to"
    assert "amq.gen-*" in outcome.detail
    assert replies.sent == []
    assert shared.records == {}
    assert shared.transactions == set()


async def test_a_batch_without_reply_to_is_stored_and_not_answered() -> None:
    shared, replies = Shared(), Replies()

    outcome = await handler(MemoryStore(shared), replies).handle(
        message(batch("r-1"), reply_to=None)
    )

    assert outcome is None
    assert replies.sent == []
    assert len(shared.transactions) == 1


async def test_items_are_counted_once_when_saving_the_answer_fails_and_the_batch_is_retried() -> (
    None
):
    store, replies = MemoryStore(Shared()), Replies()
    store.failed_saves = 1
    worker = handler(store, replies)
    submission = batch("r-1", "r-2", "r-3")
    submission.items[2].fee_baisa = 1
    accepted, rejected = counted("accepted"), counted("rejected")

    with pytest.raises(TransientError):
        await worker.handle(message(submission))
    await worker.handle(message(submission))

    assert (counted("accepted") - accepted, counted("rejected") - rejected) == (2, 1)
    assert [a.index for a in replies.sent[0][1].accepted] == [0, 1]


@pytest.mark.parametrize("first_saved", ["storing", "refusing"])
async def test_two_attempts_at_once_save_one_answer_that_agrees_with_what_is_stored(
    first_saved: str,
) -> None:
    """Attempt `storing` sees the centre licensed and stores every item; attempt `refusing`,
    whose registry snapshot already sees it suspended, refuses them all. Both started before
    either saved an answer; whichever saves first, the answer kept calls the items stored."""
    shared = Shared()
    stores = {"storing": MemoryStore(shared), "refusing": MemoryStore(shared)}
    replies = {name: Replies() for name in stores}
    suspended = replace(CENTER, licence_status="SUSPENDED")
    storing = handler(stores["storing"], replies["storing"])
    refusing = handler(stores["refusing"], replies["refusing"], center=suspended)
    submission = batch("r-1", "r-2", "r-3")
    gates = {name: asyncio.Event() for name in stores}
    # `storing` waits before storing, `refusing` before saving: both have claimed the id.
    stores["storing"].before_store = gates["storing"]
    stores["refusing"].before_save = gates["refusing"]
    tasks = {
        "storing": asyncio.create_task(storing.handle(message(submission))),
        "refusing": asyncio.create_task(refusing.handle(message(submission))),
    }
    await stores["storing"].waiting.wait()
    await stores["refusing"].waiting.wait()
    second = "refusing" if first_saved == "storing" else "storing"
    gates[first_saved].set()
    await tasks[first_saved]
    gates[second].set()
    await tasks[second]

    saved = events_pb2.BatchResult.FromString(shared.records["b-1"]["result"])
    answered = replies[second].sent[-1][1]
    assert len(shared.transactions) == 3
    assert [a.index for a in saved.accepted] == [0, 1, 2]
    assert {a.transaction_id for a in saved.accepted} == shared.transactions
    assert not saved.rejected
    assert answered == saved
    resent = Replies()
    await handler(MemoryStore(shared), resent).handle(message(submission))
    assert resent.sent[0][1] == saved
