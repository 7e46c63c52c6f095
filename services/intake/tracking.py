"""Tracking use cases: the status changes, cancellations and ratings agencies, centres and
beneficiaries make, judged and queued for the transaction's writer (reads: reading.py).

Intake never writes a transaction. It judges a status change against the latest
change it accepted for that transaction (a record of its own in intake_requests,
moved on by compare-and-set, so two racing changes are judged one after the other),
or against the stored document before the first; it numbers each accepted change
1, 2, 3... and publishes it, confirmed, for the worker to apply in that order. The
stored document lags the queue, so judging against it alone let two changes both be
accepted and the worker refuse the second.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sanad.amqp.topology import RATED, STATUS_CHANGED, Topology
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.ids import new_id
from sanad.domain.transactions import AGENCY_REPORTABLE, FINISHED, Status, can_change
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed, Unavailable, Violation
from sanad.rpc.timestamps import to_timestamp
from sanad.security.identity import Identity
from sanad.v1 import events_pb2
from services.intake import access
from services.intake.deadline import Deadline
from services.intake.operations import Publisher
from services.intake.reading import Document, Finds, stored

MAX_NOTE_LENGTH = 1000
# Compare-and-set rounds a status change may lose to concurrent ones before UNAVAILABLE.
MAX_CHANGE_ATTEMPTS = 5
log = logging.getLogger("sanad.intake")


@dataclass(frozen=True)
class Change:
    """A status change accepted and queued for the transaction's writer."""

    status: Status
    time: datetime
    actor: str
    note: str


class Store(Finds, Protocol):
    async def claim_rating(
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
    ) -> tuple[int, datetime, str]: ...
    async def latest_change(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None: ...
    async def accept_change(
        self, transaction_id: str, previous: int, record: Document, timeout_s: float | None = None
    ) -> bool: ...
    async def confirm_change(
        self, transaction_id: str, sequence: int, timeout_s: float | None = None
    ) -> None: ...


class Tracker:
    """The changes agencies, centres and beneficiaries make to stored transactions."""

    def __init__(self, store: Store, publisher: Publisher, topology: Topology) -> None:
        self.store = store
        self.publisher = publisher
        self.topology = topology

    async def update_status(
        self,
        transaction_id: str,
        status: Status | None,
        note: str,
        *,
        actor: str,
        identity: Identity,
        deadline: Deadline,
    ) -> Change:
        """An agency's progress report: reportable status, legal from the stored one."""
        found = []
        if status not in AGENCY_REPORTABLE:
            names = ", ".join(sorted(s.value for s in AGENCY_REPORTABLE))
            found.append(Violation("status", f"must be one of {names}"))
        if len(note) > MAX_NOTE_LENGTH:
            found.append(Violation("note", f"must be at most {MAX_NOTE_LENGTH} characters"))
        if found:
            raise Invalid(found)
        assert status is not None
        doc = await stored(self.store, transaction_id, deadline)
        access.check_update(identity, doc)
        return await self._change(doc, status, note, actor, deadline)

    async def cancel(
        self, transaction_id: str, reason: str, actor: str, identity: Identity, deadline: Deadline
    ) -> Change:
        """Cancel a transaction that has not finished."""
        if len(reason) > MAX_NOTE_LENGTH:
            raise Invalid([Violation("reason", f"must be at most {MAX_NOTE_LENGTH} characters")])
        doc = await stored(self.store, transaction_id, deadline)
        access.check_cancel(identity, doc)
        return await self._change(doc, Status.CANCELLED, reason, actor, deadline)

    async def rate(
        self, transaction_id: str, rating: int, actor: str, identity: Identity, deadline: Deadline
    ) -> None:
        """The beneficiary's one rating of a completed transaction."""
        if not 1 <= rating <= 5:
            raise Invalid([Violation("rating", "must be from 1 to 5")])
        doc = await stored(self.store, transaction_id, deadline)
        access.check_rate(identity, doc)
        if doc["status"] != Status.COMPLETED:
            raise PreconditionFailed(f"transaction {transaction_id} is not completed")
        if doc.get("rating"):
            await self._check_repeat(doc, rating, actor, deadline)
            return
        # The claim makes "once" hold under concurrent calls. Every call publishes the
        # claimed rating, confirmed, before it answers: a retry after a publish that failed
        # sends it again, and the worker recognises a repeat by its content and claimed
        # time. A failed publish keeps its claim: UNAVAILABLE may mean "sent, not
        # confirmed", so the claimed value may still be applied, and releasing the claim
        # would let a different value be answered OK and then refused by the worker as
        # already rated. A different value is refused, after the claimed one is sent again,
        # so no claim stays unpublished while callers keep trying.
        given = to_millisecond(utcnow())
        winner, given, by = await self.store.claim_rating(
            transaction_id, rating, given, actor, deadline.left()
        )
        event = events_pb2.TransactionRated(
            transaction_id=transaction_id, rating=winner, time=to_timestamp(given), actor=by
        )
        await self._publish(RATED, event, f"rating-{transaction_id}", deadline)
        if winner != rating:
            raise AlreadyExists(f"transaction {transaction_id} is already rated")

    async def _check_repeat(
        self, doc: Document, rating: int, actor: str, deadline: Deadline
    ) -> None:
        """A rating for a rated transaction: OK (nothing to send) when it repeats the claimed
        rating the worker applied, as a retry does after a publish that reached the broker
        but not its confirm; ALREADY_EXISTS for any other. A rating applied without a claim
        (a batch, a migration) gets one recorded here, unused: the document stays rated."""
        if doc["rating"] == rating:
            winner, given, _ = await self.store.claim_rating(
                doc["_id"], rating, to_millisecond(utcnow()), actor, deadline.left()
            )
            if (winner, given) == (rating, doc.get("rating_time")):
                return
        raise AlreadyExists(f"transaction {doc['_id']} is already rated")

    async def _change(
        self, doc: Document, status: Status, note: str, actor: str, deadline: Deadline
    ) -> Change:
        """Judge the change against the latest accepted one, take the next sequence number by
        compare-and-set, publish, answer; a lost race judges again against the winner."""
        for _ in range(MAX_CHANGE_ATTEMPTS):
            latest = await self.store.latest_change(doc["_id"], deadline.left())
            if latest is not None and not latest.get("confirmed"):
                await self._send_again(latest, deadline)
                if (replayed := _replayed(latest, status, note, actor)) is not None:
                    return replayed
            current = Status(doc["status"] if latest is None else latest["status"])
            if Status(doc["status"]) in FINISHED:  # stored finished (a batch, a migration)
                current = Status(doc["status"])
            if not can_change(current, status):
                raise PreconditionFailed(
                    f"transaction {doc['_id']} cannot go from {current.value} to {status.value}"
                )
            sequence = 0 if latest is None else int(latest["sequence"])
            now = to_millisecond(utcnow())
            if latest is not None and now <= latest["time"]:  # keep the history in time order
                now = latest["time"] + timedelta(milliseconds=1)
            change = Change(status, now, actor, note)
            event = events_pb2.TransactionStatusChanged(
                transaction_id=doc["_id"],
                change_id=new_id(),
                status=f"TRANSACTION_STATUS_{status.value}",
                time=to_timestamp(now),
                actor=actor,
                note=note,
                sequence=sequence + 1,
            )
            record = {
                "status": status.value,
                "sequence": sequence + 1,
                "time": now,
                "event": event.SerializeToString(),
                "confirmed": False,
            }
            if await self.store.accept_change(doc["_id"], sequence, record, deadline.left()):
                await self._send_again(record, deadline)
                return change
        raise Unavailable(f"transaction {doc['_id']} is changing fast; retry later")

    async def _send_again(self, latest: Document, deadline: Deadline) -> None:
        """Publish an accepted change (again: the worker ignores a repeat by its change id),
        and note its confirm, so no accepted change stays unsent while its successors wait
        for it. A failed note costs one more repeat later, not the caller's answer."""
        event = events_pb2.TransactionStatusChanged.FromString(latest["event"])
        await self._publish(STATUS_CHANGED, event, event.change_id, deadline)
        try:
            await self.store.confirm_change(
                event.transaction_id, int(latest["sequence"]), deadline.left()
            )
        except Unavailable:
            log.warning(
                "could not note a published status change; it will be sent again",
                extra={"transaction_id": event.transaction_id, "change_id": event.change_id},
            )

    async def _publish(
        self, routing_key: str, event: Any, message_id: str, deadline: Deadline
    ) -> None:
        await self.publisher.publish(
            self.topology.transactions_exchange,
            routing_key,
            event.SerializeToString(),
            message_type=event.DESCRIPTOR.full_name,
            message_id=message_id,
            timeout_s=deadline.left(),
        )


def _replayed(latest: Document, status: Status, note: str, actor: str) -> Change | None:
    """The answer to a retry of the unconfirmed latest change (the same status, actor and
    note: the request carries no id of its own), as its first call would have had it; None
    for a different change. A status never follows itself, so no new change is lost here."""
    event = events_pb2.TransactionStatusChanged.FromString(latest["event"])
    if (latest["status"], event.actor, event.note) != (status.value, actor, note):
        return None
    return Change(status, latest["time"], actor, note)
