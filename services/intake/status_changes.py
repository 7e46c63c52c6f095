"""Status changes, judged in order and queued for the transaction's writer.

Intake never writes a transaction. It judges a status change against the latest
change it accepted for that transaction (a record of its own in intake_requests,
moved on by compare-and-set, so two racing changes are judged one after the other),
or against the stored document before the first; it numbers each accepted change
1, 2, 3... and publishes it, confirmed, for the worker to apply in that order. The
stored document lags the queue, so judging against it alone let two changes both be
accepted and the worker refuse the second.

A change sent with a request id is accepted together with the record of its answer (one
MongoDB transaction), so its retries are answered from that record (change_requests.py).
An audited call's OK event is taken once per call and inserted in the transaction that
accepts its change (sanad.security.carried): the change is accepted exactly when its event is
stored. A call that accepts nothing (refused, failed, or answered from an earlier call) gives
it back, and the security interceptor records it after the call, as for any other RPC.
"""

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any, Protocol

from sanad.amqp.topology import STATUS_CHANGED, Topology
from sanad.deadline import NO_DEADLINE, Deadline, pause_after_losing
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.ids import new_id
from sanad.domain.transactions import FINISHED, PAUSED, Status, can_change
from sanad.errors import PreconditionFailed, Unavailable
from sanad.rpc.timestamps import to_timestamp
from sanad.security.carried import CarriedEvent
from sanad.v1 import events_pb2
from services.intake.change_requests import (
    Change,
    answer_of,
    answer_record,
    awaits_confirm,
    change_key,
    replayed,
)
from services.intake.ports import Publisher
from services.intake.reading import Document
from services.intake.request_store import unsent_key
from services.intake.resends import TRY_S, Resends
from services.intake.sending import Sends

# Compare-and-set rounds a status change may lose to concurrent ones before UNAVAILABLE.
MAX_CHANGE_ATTEMPTS = 5
# Steps a transaction's history may hold before its final one. IN_PROGRESS <-> AWAITING_DOCUMENTS
# could otherwise repeat forever, while every read sends the whole history in one gRPC message
# (4 MiB) and the worker stores it in one MongoDB document (16 MiB): at 200 steps with the
# longest notes a transaction is under 0.5 MB. Real ones take a handful of steps, a migrated one
# at most 52 (workers.batch.content). A final status may always follow, and a paused
# transaction may always resume (a paused one completes only once IN_PROGRESS again), so every
# transaction can still be completed, one step over the cap at most before its final one.
MAX_HISTORY_STEPS = 200
log = logging.getLogger("sanad.intake")


class ChangeStore(Protocol):
    async def latest_change(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None: ...
    def carried_event(self) -> CarriedEvent: ...
    async def accept_change(
        self,
        transaction_id: str,
        previous: int,
        record: Document,
        timeout_s: float | None = None,
        *,
        answer: Document | None = None,
        event: CarriedEvent | None = None,
    ) -> bool: ...
    async def find_change_request(
        self, key: str, timeout_s: float | None = None
    ) -> Document | None: ...
    async def confirm_change(
        self, transaction_id: str, sequence: int, timeout_s: float | None = None
    ) -> None: ...
    async def note_unsent(
        self, key: str, sequence: int, timeout_s: float | None = None
    ) -> None: ...


class StatusChanges:
    """Accepts, numbers and sends the status changes of stored transactions."""

    def __init__(
        self,
        store: ChangeStore,
        publisher: Publisher,
        topology: Topology,
        resends: Resends,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topology = topology
        self.sending = Sends()
        self.resends = resends

    async def make(
        self,
        doc: Document,
        status: Status,
        note: str,
        actor: str,
        deadline: Deadline,
        *,
        request_id: str = "",
    ) -> Change:
        """Judge the change against the latest accepted one, take the next sequence number by
        compare-and-set, publish, answer; a lost race judges again against the winner (or,
        under a request id, finds the winner was this very request and answers as it did)."""
        # Taken once: every round's transaction carries the same event (one _id), and only
        # the round that accepts the change stores it.
        event = self.store.carried_event()
        try:
            return await self._judged(
                doc, status, note, actor, deadline, request_id=request_id, event=event
            )
        except (Unavailable, asyncio.CancelledError):
            # This change, or the one before it, may be accepted and unsent: out of time or
            # refused by the broker after its commit, or a commit of unknown outcome.
            self.resend_later(doc["_id"])
            raise
        finally:
            event.end()  # given back unless a round's commit stored it (or may have)

    def resend_later(self, transaction_id: str) -> None:
        """Have the resends send the transaction's latest accepted change, should it be unsent
        (resends.py)."""
        key = unsent_key("status", transaction_id)
        self.resends.add(key, lambda: self.send_latest(transaction_id))

    async def send_latest(self, transaction_id: str, deadline: Deadline | None = None) -> None:
        """Publish the transaction's latest accepted change unless it is confirmed: a try of
        the resends (resends.py), within TRY_S unless given a deadline."""
        deadline = Deadline(TRY_S) if deadline is None else deadline
        latest = await self.store.latest_change(transaction_id, deadline.left())
        if latest is not None and not latest.get("confirmed"):
            await self.send_again(latest, deadline)

    async def _judged(
        self,
        doc: Document,
        status: Status,
        note: str,
        actor: str,
        deadline: Deadline,
        *,
        request_id: str,
        event: CarriedEvent,
    ) -> Change:
        """make's rounds: each judges against the latest accepted change and tries to accept
        this one after it."""
        key = change_key(actor, request_id) if request_id else ""
        for tried in range(1, MAX_CHANGE_ATTEMPTS + 1):
            started = time.monotonic()
            latest = await self.store.latest_change(doc["_id"], deadline.left())
            if key and (
                first := await self._answered(
                    key,
                    doc,
                    latest,
                    status=status,
                    note=note,
                    deadline=deadline,
                    request_id=request_id,
                )
            ):
                return first
            if latest is not None and not latest.get("confirmed"):
                await self.send_again(latest, deadline)
            # The latest change again, confirmed or not: a retry whose first call failed while
            # a resend confirmed it in the background (a second later) was refused "COMPLETED
            # to COMPLETED". Under a request id a retry is known by its record, not its content.
            again = None if latest is None or key else replayed(latest, status, note, actor)
            if again is not None:
                return again
            _judge(doc, latest, status)
            sequence = 0 if latest is None else int(latest["sequence"])
            change, record = _numbered(doc["_id"], latest, Change(status, utcnow(), actor, note))
            answer = answer_record(key, doc["_id"], change, sequence + 1) if key else None
            # Noted first: should this process stop between the commit and the confirm,
            # another intake sends the change (left_unsent.py).
            await self.store.note_unsent(
                unsent_key("status", doc["_id"]), sequence + 1, deadline.left()
            )
            if await self.store.accept_change(
                doc["_id"], sequence, record, deadline.left(), answer=answer, event=event
            ):
                await self.send_again(record, deadline)
                return change
            # Lost: callers that retry in step keep colliding (six calls of one request id
            # lost all five rounds on a busy machine), so each waits a random while first.
            pause = pause_after_losing(tried, time.monotonic() - started, deadline)
            if pause is None or tried == MAX_CHANGE_ATTEMPTS:
                break
            await asyncio.sleep(pause)
        # Each round lost to a concurrent change of the transaction or to a write conflict in
        # the database (the change's transaction, its answer or its audit event).
        raise Unavailable(
            f"transaction {doc['_id']}: the change lost {MAX_CHANGE_ATTEMPTS} tries to concurrent "
            "changes or database write conflicts (a stopped intake's unfinished change holds the"
            " transaction for up to a minute); retry later"
        )

    async def _answered(
        self,
        key: str,
        doc: Document,
        latest: Document | None,
        *,
        status: Status,
        note: str,
        deadline: Deadline,
        request_id: str,
    ) -> Change | None:
        """The first answer of this request id, after sending its change again if it may still
        be unsent (as a retry without an id does); None when the id was not used yet.

        Read after `latest`: the two are written together, so a change of this request that
        `latest` shows is found here, not judged as a new one against itself."""
        record = await self.store.find_change_request(key, deadline.left())
        if record is None:
            return None
        first = answer_of(record, request_id, transaction_id=doc["_id"], status=status, note=note)
        if latest is None or int(latest["sequence"]) < int(record["sequence"]):
            latest = await self.store.latest_change(doc["_id"], deadline.left())  # accepted since
        if awaits_confirm(record, latest):
            assert latest is not None
            await self.send_again(latest, deadline)
        log.info(
            "status change answered again under its request id",
            extra={"transaction_id": doc["_id"], "sequence": record["sequence"]},
        )
        return first

    async def send_again(self, latest: Document, deadline: Deadline) -> None:
        """Publish an accepted change (again: the worker ignores a repeat by its change id),
        and note its confirm, so no accepted change stays unsent while its successors (and a
        completion's rating, tracking.py) wait for it. A failed note costs one more repeat
        later, not the caller's answer. A change confirmed here, or being published here, is
        not published again (sending.py).

        The publish is every waiter's, so it runs within the publisher's own confirm limit, not
        within the deadline of the call that started it; each caller waits within its own."""
        event = events_pb2.TransactionStatusChanged.FromString(latest["event"])
        await self.sending.send(
            event.change_id,
            lambda: publish(
                self.publisher,
                self.topology,
                event,
                routing_key=STATUS_CHANGED,
                message_id=event.change_id,
                deadline=NO_DEADLINE,
            ),
            deadline.left(),
        )
        try:
            await self.store.confirm_change(
                event.transaction_id, int(latest["sequence"]), deadline.left()
            )
        except Unavailable:
            log.warning(
                "could not note a published status change; it will be sent again",
                extra={"transaction_id": event.transaction_id, "change_id": event.change_id},
            )


def _judge(doc: Document, latest: Document | None, status: Status) -> None:
    """PreconditionFailed unless status may follow the latest accepted change (the stored
    status before the first, or when the transaction is stored finished: a batch, a
    migration), and, unless it is final or resumes a paused transaction, the history has room
    for it."""
    current = Status(doc["status"] if latest is None else latest["status"])
    if Status(doc["status"]) in FINISHED:
        current = Status(doc["status"])
    if not can_change(current, status):
        raise PreconditionFailed(
            f"transaction {doc['_id']} cannot go from {current.value} to {status.value}"
        )
    resuming = current in PAUSED and status is Status.IN_PROGRESS
    if status not in FINISHED and not resuming and _steps_after(doc, latest) > MAX_HISTORY_STEPS:
        finals = ", ".join(sorted(final.value for final in FINISHED))
        raise PreconditionFailed(
            f"transaction {doc['_id']} has reached its limit of {MAX_HISTORY_STEPS} history "
            f"steps: only a final status ({finals}) may follow"
        )


def _steps_after(doc: Document, latest: Document | None) -> int:
    """The history's length once this change is applied: the stored steps, one for each change
    accepted after the last the worker applied (the document lags the queue), and this one."""
    accepted = 0 if latest is None else int(latest["sequence"])
    return len(doc["history"]) + max(accepted - int(doc.get("sequence", 0)), 0) + 1


def _numbered(
    transaction_id: str, latest: Document | None, asked: Change
) -> tuple[Change, Document]:
    """The change as it is answered (at a whole millisecond, after the latest: the history
    stays in time order), and the latest-change record it would be stored as."""
    sequence = 1 if latest is None else int(latest["sequence"]) + 1
    now = to_millisecond(asked.time)
    if latest is not None and now <= latest["time"]:
        now = latest["time"] + timedelta(milliseconds=1)
    event = events_pb2.TransactionStatusChanged(
        transaction_id=transaction_id,
        change_id=new_id(),
        status=f"TRANSACTION_STATUS_{asked.status.value}",
        time=to_timestamp(now),
        actor=asked.actor,
        note=asked.note,
        sequence=sequence,
    )
    record = {
        "status": asked.status.value,
        "sequence": sequence,
        "time": now,
        "event": event.SerializeToString(),
        "confirmed": False,
    }
    return Change(asked.status, now, asked.actor, asked.note), record


async def publish(
    publisher: Publisher,
    topology: Topology,
    event: Any,
    *,
    routing_key: str,
    message_id: str,
    deadline: Deadline,
) -> None:
    """Publish an event to the transactions exchange and wait for the broker's confirm."""
    await publisher.publish(
        topology.transactions_exchange,
        routing_key,
        event.SerializeToString(),
        message_type=event.DESCRIPTOR.full_name,
        message_id=message_id,
        timeout_s=deadline.left(),
    )
