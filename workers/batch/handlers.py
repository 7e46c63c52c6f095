"""Turns one BatchSubmission delivery into stored items and one BatchResult reply."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError

from sanad.amqp.batches import RESULT_TYPE, SUBMISSION_TYPE, item_count
from sanad.amqp.consumer import Dead, Outcome, TransientError
from sanad.amqp.metrics import BATCH_ITEMS, BATCH_SECONDS, BATCHES
from sanad.domain.clock import utcnow
from sanad.v1 import common_pb2, events_pb2
from services.intake.domain import CenterView, ServiceView
from workers.batch.authorization import Authorize
from workers.batch.domain import Context, Verdict, item_id, judge_items
from workers.batch.store import BatchStore

log = logging.getLogger("sanad.batch")

Reply = Callable[[str, bytes, str, str], Awaitable[None]]
# Every reason this worker dead-letters with (its counters start at zero).
DEAD_LETTER_REASONS = (
    "unknown-type",
    "undecodable",
    "invalid",
    "too-large",
    "not-allowed",
    "batch-id-in-use",
)


class Snapshot(Protocol):
    centers: dict[str, CenterView]
    services: dict[str, ServiceView]

    @property
    def ready(self) -> bool: ...


@dataclass(frozen=True)
class Limits:
    max_items: int = 5000
    chunk: int = 1000


class BatchHandler:
    """Handles micro-batches of batch submissions one message at a time."""

    def __init__(
        self,
        store: BatchStore,
        snapshot: Snapshot,
        reply: Reply,
        secret: bytes,
        limits: Limits,
        *,
        may_submit: Authorize,
    ) -> None:
        self.may_submit = may_submit
        self.store = store
        self.snapshot = snapshot
        self.reply = reply
        self.secret = secret
        self.limits = limits

    async def __call__(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        return [await self.handle(message) for message in batch]

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        """Answer one submission; a refusal is dead-lettered and answered with its reason."""
        started = time.perf_counter()
        submission = events_pb2.BatchSubmission()
        refusal = self._refusal(message, submission)
        if refusal is not None:
            BATCHES.labels("refused").inc()
            await self._answer(
                message,
                events_pb2.BatchResult(batch_id=submission.batch_id, refused_reason=refusal.detail),
            )
            return refusal
        user = message.user_id or ""
        record, fresh = await self.store.claim(
            submission.batch_id, user, submission.center_id, utcnow()
        )
        if record["submitted_by"] != user:
            BATCHES.labels("refused").inc()
            dead = Dead(
                "batch-id-in-use", f"batch id {submission.batch_id!r} belongs to another user"
            )
            await self._answer(
                message,
                events_pb2.BatchResult(batch_id=submission.batch_id, refused_reason=dead.detail),
            )
            return dead
        if "result" in record:
            BATCHES.labels("repeated").inc()
            await self._send(message, bytes(record["result"]))
            return None
        result = await self._store(submission, record, user, fresh)
        await self.store.save_result(
            submission.batch_id,
            result.SerializeToString(),
            len(result.accepted),
            len(result.rejected),
        )
        await self._send(message, result.SerializeToString())
        BATCHES.labels("stored").inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "batch answered",
            extra={
                "batch_id": submission.batch_id,
                "accepted": len(result.accepted),
                "rejected": len(result.rejected),
            },
        )
        return None

    def _refusal(
        self, message: AbstractIncomingMessage, submission: events_pb2.BatchSubmission
    ) -> Dead | None:
        if message.type != SUBMISSION_TYPE:
            return Dead("unknown-type", f"message type {message.type!r} is not handled here")
        try:
            submission.ParseFromString(message.body)
        except DecodeError as error:
            return Dead("undecodable", f"not a valid {SUBMISSION_TYPE}: {error}")
        if not submission.batch_id:
            return Dead("invalid", "batch_id is required")
        size = item_count(submission)
        if size > self.limits.max_items:
            return Dead(
                "too-large", f"{size} items; a batch may carry at most {self.limits.max_items}"
            )
        if not self.may_submit(message.user_id or "", submission.center_id):
            return Dead("not-allowed", f"not allowed to submit for centre {submission.center_id!r}")
        return None

    async def _store(
        self, submission: events_pb2.BatchSubmission, record: dict, user: str, fresh: bool
    ) -> events_pb2.BatchResult:
        if not self.snapshot.ready:
            raise TransientError("the registry snapshot is still loading")
        context = Context(
            batch_key=submission.batch_id,
            center_id=submission.center_id,
            submitted_by=user or "batch",
            started_at=record["started_at"],
            # One view of the registry for the whole batch, while updates go on arriving.
            centers=dict(self.snapshot.centers),
            services=dict(self.snapshot.services),
            secret=self.secret,
            may_submit_for=partial(self.may_submit, user),
        )
        verdict = await self._judge_and_store(submission, context, fresh)
        BATCH_ITEMS.labels("accepted").inc(len(verdict.accepted) + len(verdict.stored_before))
        BATCH_ITEMS.labels("rejected").inc(len(verdict.rejected))
        return result_of(submission.batch_id, verdict)

    async def _judge_and_store(
        self, submission: events_pb2.BatchSubmission, context: Context, fresh: bool
    ) -> Verdict:
        """Judge the batch a chunk of items at a time, storing each chunk while the next is judged.

        Judging is this process's CPU and storing mostly the database's, so the two overlap;
        judging runs in a thread to leave the event loop free for the store's round trips.
        Chunks are stored one transaction at a time, in order: they share rollup documents,
        and concurrent transactions on those would conflict and retry.

        Every attempt judges as of the batch's first arrival. An attempt after one that
        failed midway (not fresh) may find the registry changed since: an item it now refuses
        whose transaction an earlier attempt stored is answered as accepted, as it was stored.
        """
        now = context.started_at
        total = item_count(submission)
        verdict = Verdict()
        storing: asyncio.Task[int] | None = None
        try:
            for start in range(0, total, self.limits.chunk):
                indexes = range(start, min(start + self.limits.chunk, total))
                judged = await asyncio.to_thread(judge_items, submission, context, now, indexes)
                if not fresh and judged.rejected:
                    await self._accept_stored(submission, context, judged)
                if storing is not None:
                    await storing
                verdict.extend(judged)
                storing = None
                if judged.accepted:
                    storing = asyncio.create_task(self.store.store_chunk(judged.documents))
            if storing is not None:
                await storing
        finally:
            # Judging failed while a chunk was being stored: let that transaction finish.
            if storing is not None and not storing.done():
                await asyncio.gather(storing, return_exceptions=True)
        return verdict

    async def _accept_stored(
        self, submission: events_pb2.BatchSubmission, context: Context, judged: Verdict
    ) -> None:
        """Move the refused items whose transactions an earlier attempt stored to accepted."""
        ids = {}
        for index, _ in judged.rejected:
            if (found := item_id(submission, context, index)) is not None:
                ids[index] = found
        stored = await self.store.stored_ids(list(ids.values())) if ids else set()
        judged.accept_stored({index: tx for index, tx in ids.items() if tx in stored})

    async def _answer(
        self, message: AbstractIncomingMessage, result: events_pb2.BatchResult
    ) -> None:
        await self._send(message, result.SerializeToString())

    async def _send(self, message: AbstractIncomingMessage, body: bytes) -> None:
        if message.reply_to:
            await self.reply(message.reply_to, body, message.correlation_id or "", RESULT_TYPE)


def result_of(batch_id: str, verdict: Verdict) -> events_pb2.BatchResult:
    """The BatchResult of a judged batch, items in index order."""
    return events_pb2.BatchResult(
        batch_id=batch_id,
        accepted=[
            events_pb2.BatchItemAccepted(index=index, transaction_id=transaction_id)
            for index, transaction_id in verdict.transaction_ids
        ],
        rejected=[
            events_pb2.BatchItemRejected(
                index=index,
                violations=[
                    common_pb2.FieldViolation(field=v.field, description=v.description)
                    for v in found
                ],
            )
            for index, found in verdict.rejected
        ],
    )
