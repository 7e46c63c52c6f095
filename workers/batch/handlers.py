"""Turns one BatchSubmission delivery into stored items, one BatchResult reply and one audit
event."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, Protocol

from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.batches import MAX_BATCH_ID, RESULT_TYPE
from sanad.amqp.metrics import (
    BATCH_ITEMS,
    BATCH_OUTCOMES,
    BATCH_SECONDS,
    BATCHES,
    ITEM_OUTCOMES,
)
from sanad.amqp.outcomes import ReplyRefused, undecodable
from sanad.amqp.properties import undecodable_properties
from sanad.amqp.verdicts import Dead, Outcome, TransientError
from sanad.domain.clock import utcnow
from sanad.domain.submissions import CenterView, ServiceView
from sanad.records import item_count
from sanad.registry_lookup import LOOKUP_S, Unanswered
from sanad.registry_past import Dated
from sanad.security.audit import document_of
from sanad.telemetry.metrics import BATCH_REFUSALS_UNANSWERED
from sanad.v1 import events_pb2
from workers.batch import audit
from workers.batch.answers import result_of, settle
from workers.batch.authorization import Authorize, MayMigrate
from workers.batch.content import fingerprint
from workers.batch.domain import (
    Context,
    Verdict,
    item_id,
    judge_items,
    registry_keys,
    with_views,
)
from workers.batch.refusals import (
    DEAD_LETTER_REASONS,
    REPLY_TO_RULE,
    Limits,
    may_reply_to,
    read_refusal,
    unread_refusal,
)
from workers.batch.requests import BatchRequests
from workers.batch.store import BatchStore, Document

log = logging.getLogger("sanad.batch")

Reply = Callable[[str, bytes, str, str], Awaitable[None]]
# Centres, and services, one chunk's refused items may ask the registry about.
MAX_LOOKUPS = 16


class Snapshot(Protocol):
    centers: dict[str, CenterView]
    services: dict[str, ServiceView]
    places: dict[str, tuple[Dated[CenterView], ...]]
    terms: dict[str, tuple[Dated[ServiceView], ...]]

    @property
    def ready(self) -> bool: ...


class Lookup(Protocol):
    """sanad.registry_lookup.RegistryLookup: centres and services as the registry
    has them now."""

    async def center(
        self, center_id: str, timeout_s: float, caller: str
    ) -> CenterView | Unanswered | None: ...

    async def service(
        self, code: str, timeout_s: float, caller: str
    ) -> ServiceView | Unanswered | None: ...


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
        may_migrate: MayMigrate,
        lookup: Lookup | None = None,
    ) -> None:
        # At zero, so that an alert's or a panel's increase() sees the first of each too.
        for reason in DEAD_LETTER_REASONS:
            BATCH_REFUSALS_UNANSWERED.labels(reason)
        for outcome in ITEM_OUTCOMES:
            BATCH_ITEMS.labels(outcome)
        for outcome in BATCH_OUTCOMES:
            BATCHES.labels(outcome)
        self.may_submit = may_submit
        self.may_migrate = may_migrate
        self.store = store
        self.snapshot = snapshot
        self.lookup = lookup
        self.reply = reply
        self.secret = secret
        self.limits = limits

    async def __call__(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        return [await self.handle(message) for message in batch]

    async def handle(self, message: AbstractIncomingMessage) -> Outcome:
        """Answer one submission; a refusal is dead-lettered and answered with its reason."""
        started = time.perf_counter()
        if (broken := undecodable(message)) is not None:
            # Properties the client cannot decode: refused unread, answered only when its
            # reply_to and correlation_id are not among them.
            return await self._refuse(message, events_pb2.BatchSubmission(), broken)
        reply_to = message.reply_to or ""
        if not may_reply_to(reply_to):
            # Answering would publish, with this worker's rights, wherever the sender names:
            # into a work queue, or another submitter's queue. Not answered, not stored.
            unanswered = Dead(
                "bad-reply-to",
                f"reply_to {reply_to[:100]!r} {REPLY_TO_RULE}",
                expires_after_s=self.limits.refusal_ttl_s,
                unanswered=True,
            )
            await self._audit_refusal(message, events_pb2.BatchSubmission(), unanswered)
            BATCHES.labels("refused").inc()
            return unanswered
        submission = events_pb2.BatchSubmission()
        if (refusal := self._refusal(message, submission)) is not None:
            return await self._refuse(message, submission, refusal)
        claim = await self._claim(message, submission)
        if isinstance(claim, Dead):
            return await self._refuse(message, submission, claim)
        record, fresh = claim
        if "result" in record:
            BATCHES.labels("repeated").inc()
            await self._send(message, bytes(record["result"]))
            return None
        context = self._context(submission, record, message.user_id or "")
        answer = await self._answer(message, submission, context, fresh)
        await self._send(message, answer.SerializeToString())
        BATCH_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "batch answered",
            extra={
                "batch_id": submission.batch_id,
                "accepted": len(answer.accepted),
                "rejected": len(answer.rejected),
            },
        )
        return None

    async def _refuse(
        self,
        message: AbstractIncomingMessage,
        submission: events_pb2.BatchSubmission,
        refusal: Dead,
    ) -> Dead:
        """Audit a batch refused as a whole, and answer it with the reason it is dead-lettered
        with.

        A refusal's dead letter expires after limits.refusal_ttl_s: it holds every item's
        clear civil number, and the audit log keeps the refusal. An answered submitter knows why
        and sends the batch again. Without a reply queue nobody was told: counted apart
        (Dead.unanswered) so that it alerts, and an operator has until it expires to look
        (kept for good, any batch user could pile up civil numbers in the broker, 16 MiB a
        message).
        """
        await self._audit_refusal(message, submission, refusal)
        BATCHES.labels("refused").inc()
        result = events_pb2.BatchResult(
            batch_id=submission.batch_id[:MAX_BATCH_ID], refused_reason=refusal.detail
        )
        answered = await self._send(message, result.SerializeToString())
        return replace(refusal, expires_after_s=self.limits.refusal_ttl_s, unanswered=not answered)

    async def _claim(
        self, message: AbstractIncomingMessage, submission: events_pb2.BatchSubmission
    ) -> tuple[Document, bool] | Dead:
        """The batch's record and whether it was created now, or why this message may not
        use the batch id: another user's, or used for other content.

        A record written before fingerprints were stored has none and is answered as before.
        """
        user = message.user_id or ""
        content = fingerprint(submission, self.secret)
        batch_id = submission.batch_id
        record, fresh = await self.store.claim(
            batch_id, user, submission.center_id, utcnow(), content
        )
        if record["submitted_by"] != user:
            # Only when a record from before records were kept per submitter holds this
            # submitter's record id as its batch id.
            return Dead("batch-id-in-use", f"batch id {batch_id!r} belongs to another user")
        if record.get("fingerprint", content) != content:
            return Dead(
                "batch-id-reused",
                f"batch id {batch_id!r} was already used for a batch with other content;"
                " send that batch again unchanged (the same rows in the same chunks),"
                " or this one under a new batch id",
            )
        return record, fresh

    async def _answer(
        self,
        message: AbstractIncomingMessage,
        submission: events_pb2.BatchSubmission,
        context: Context,
        fresh: bool,
    ) -> events_pb2.BatchResult:
        """Judge and store the batch, then save this attempt's answer with the batch's audit
        event, unless another attempt saved one first: then answer with that one, made to
        agree with what is stored (see answers.settle); its event is that attempt's."""
        verdict = await self._judge_and_store(submission, context, fresh)
        # A concurrent attempt at the same batch may have stored what this one refused.
        await self._accept_stored(submission, context, verdict)
        result = result_of(submission.batch_id, verdict)
        accepted, rejected = len(result.accepted), len(result.rejected)
        event = audit.answered(message, submission, utcnow(), accepted, rejected)
        earlier = await self.store.save_result(
            context.batch_key, result.SerializeToString(), accepted, rejected, document_of(event)
        )
        if earlier is None:
            BATCHES.labels("stored").inc()
            # Counted once, by the attempt whose answer is saved: a retry after a failed
            # save, or a concurrent attempt, answers the same items again.
            BATCH_ITEMS.labels("accepted").inc(len(result.accepted))
            BATCH_ITEMS.labels("rejected").inc(len(result.rejected))
            return result
        BATCHES.labels("repeated").inc()
        return await settle(self.store, submission, context, earlier)

    def _refusal(
        self, message: AbstractIncomingMessage, submission: events_pb2.BatchSubmission
    ) -> Dead | None:
        """Why the batch is refused as a whole, if it is; parses it into submission."""
        return unread_refusal(message, self.limits) or read_refusal(
            message, submission, self.limits, self.may_submit, self.may_migrate
        )

    def _context(
        self, submission: events_pb2.BatchSubmission, record: Document, user: str
    ) -> Context:
        if not self.snapshot.ready:
            raise TransientError(
                "the registry snapshot is not current (still loading, or the registry out of"
                " reach for longer than its grace)"
            )
        return Context(
            # The record's id: transaction ids derive from it, so a batch id is its submitter's.
            batch_key=record["_id"],
            center_id=submission.center_id,
            submitted_by=user or "batch",
            started_at=record["started_at"],
            # One view of the registry for the whole batch, while updates go on arriving.
            centers=dict(self.snapshot.centers),
            services=dict(self.snapshot.services),
            places=dict(self.snapshot.places),
            terms=dict(self.snapshot.terms),
            secret=self.secret,
            may_submit_for=partial(self.may_submit, user),
        )

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
        requests = BatchRequests(self.store, submission, context)
        storing: asyncio.Task[int] | None = None
        try:
            for start in range(0, total, self.limits.chunk):
                indexes = range(start, min(start + self.limits.chunk, total))
                judged = await asyncio.to_thread(judge_items, submission, context, now, indexes)
                context = await self._judged_again(submission, context, judged)
                if not fresh and judged.rejected:
                    await self._accept_stored(submission, context, judged)
                claims = await requests.settle(judged)
                if storing is not None:
                    await storing
                verdict.extend(judged)
                storing = None
                if judged.accepted:
                    storing = asyncio.create_task(self.store.store_chunk(judged.documents, claims))
            if storing is not None:
                await storing
        finally:
            # Judging failed while a chunk was being stored: let that transaction finish.
            if storing is not None and not storing.done():
                await asyncio.gather(storing, return_exceptions=True)
        return verdict

    async def _judged_again(
        self, submission: events_pb2.BatchSubmission, context: Context, judged: Verdict
    ) -> Context:
        """Items the registry copy refused for the registry's state, judged again against the
        registry as it is now (sanad/registry_lookup.py): a centre activated, a
        service offered or published a moment before the batch was sent, which the watch
        streams have not brought yet, refuses none of its items. The context with what the
        registry answered judges the rest of the batch; when it does not answer, or agrees
        with the copy, the refusals stand."""
        if self.lookup is None or not judged.rejected:
            return context
        keys = [
            (index, found)
            for index, violations in judged.rejected
            if (found := registry_keys(submission, context, index, violations)) is not None
        ]
        centers = sorted({center for _, (center, _) in keys})[:MAX_LOOKUPS]
        services = sorted({service for _, (_, service) in keys})[:MAX_LOOKUPS]
        caller = f"amqp:{context.submitted_by}"  # the batch's submitter: its share
        answers = await asyncio.gather(
            *(self.lookup.center(center, LOOKUP_S, caller) for center in centers),
            *(self.lookup.service(service, LOOKUP_S, caller) for service in services),
        )
        updated = with_views(
            context,
            _answered(zip(centers, answers[: len(centers)], strict=True)),
            _answered(zip(services, answers[len(centers) :], strict=True)),
        )
        if updated is None:
            return context
        indexes = [index for index, _ in keys]
        again = await asyncio.to_thread(
            judge_items, submission, updated, updated.started_at, indexes
        )
        judged.judged_again(again)
        return updated

    async def _accept_stored(
        self, submission: events_pb2.BatchSubmission, context: Context, judged: Verdict
    ) -> None:
        """Move the refused items whose transactions another attempt (an earlier one that
        failed, or a concurrent one) stored to accepted."""
        ids = {}
        for index, _ in judged.rejected:
            if (found := item_id(submission, context, index)) is not None:
                ids[index] = found
        stored = await self.store.stored_ids(list(ids.values())) if ids else set()
        judged.accept_stored({index: tx for index, tx in ids.items() if tx in stored})

    async def _audit_refusal(
        self,
        message: AbstractIncomingMessage,
        submission: events_pb2.BatchSubmission,
        refusal: Dead,
    ) -> None:
        """Append the event of a batch refused as a whole, unless an earlier delivery of the
        same message wrote it (BatchStore.record_refusal)."""
        event = audit.refused(message, submission, utcnow(), refusal)
        await self.store.record_refusal(document_of(event), bool(message.redelivered))

    async def failed(self, message: AbstractIncomingMessage, dead: Dead) -> None:
        """Append the event of a batch about to be dead-lettered as `handler-failed` (its
        handling kept raising), once however often it is redelivered, as a refusal's
        (BatchStore.record_refusal): every batch a submitter sent ends in the trail.
        Raises TransientError while MongoDB does not take it: the letter waits for it."""
        submission = events_pb2.BatchSubmission()
        try:
            read = self._refusal(message, submission) is None
        except Exception:  # what failed may be reading it: the event names what it can
            read = False
        event = audit.failed(message, submission if read else None, utcnow(), dead)
        await self.store.record_refusal(document_of(event), bool(message.redelivered))

    async def _send(self, message: AbstractIncomingMessage, body: bytes) -> bool:
        """Answer on the message's reply queue, if it names one it may be answered on and
        the client could decode where and how to answer; whether it was answered."""
        if not message.reply_to or not may_reply_to(message.reply_to):
            return False
        if {"reply_to", "correlation_id"} & undecodable_properties(message).keys():
            return False
        try:
            await self.reply(message.reply_to, body, message.correlation_id or "", RESULT_TYPE)
        except ReplyRefused as refused:
            # The sender's own queue takes no more: its loss alone. The answer is kept (a
            # refusal's in the trail), and the same batch sent again is answered the same.
            log.warning(
                "batch not answered: %s",
                refused,
                extra={"message_id": message.message_id, "correlation_id": message.correlation_id},
            )
            return False
        return True


def _answered(pairs: Iterable[tuple[str, object]]) -> dict[str, Any]:
    """The keys the registry answered for (a view, or None for one it does not know)."""
    return {key: view for key, view in pairs if not isinstance(view, Unanswered)}
