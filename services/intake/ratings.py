"""Ratings: the beneficiary's one rating of a completed transaction, claimed once, published
after the completion it follows, and sent again until confirmed (the tracking use cases that
change a transaction's status: tracking.py)."""

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from sanad.amqp.topology import RATED, Topology
from sanad.deadline import Deadline
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.transactions import FINISHED, Status
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed, Unavailable, Violation
from sanad.rpc.timestamps import to_timestamp
from sanad.security.carried import CarriedEvent
from sanad.security.identity import Identity
from sanad.v1 import events_pb2
from services.intake import access
from services.intake.ports import Publisher
from services.intake.reading import Document, Finds, stored
from services.intake.request_store import unsent_key
from services.intake.resends import TRY_S, Resends
from services.intake.status_changes import ChangeStore, StatusChanges, publish

log = logging.getLogger("sanad.intake")


class Requests(ChangeStore, Protocol):
    """Where a status change or a rating is recorded once: intake_requests (request_store.py)."""

    async def claim_rating(
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
        *,
        event: CarriedEvent | None = None,
    ) -> tuple[int, datetime, str]: ...

    async def find_rating(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> tuple[int, datetime, str] | None: ...

    async def note_sent(self, key: str, sequence: int, timeout_s: float | None = None) -> None: ...


class Ratings:
    """Ratings of stored transactions, sent after their completions (changes)."""

    def __init__(
        self,
        transactions: Finds,
        requests: Requests,
        publisher: Publisher,
        topology: Topology,
        *,
        changes: StatusChanges,
        resends: Resends,
    ) -> None:
        self.transactions = transactions
        self.requests = requests
        self.publisher = publisher
        self.topology = topology
        self.changes = changes
        self.resends = resends

    async def rate(
        self, transaction_id: str, rating: int, actor: str, identity: Identity, deadline: Deadline
    ) -> None:
        """The beneficiary's one rating of a completed transaction."""
        if not 1 <= rating <= 5:
            raise Invalid([Violation("rating", "must be from 1 to 5")])
        doc = await stored(self.transactions, transaction_id, deadline, identity)
        access.check_rate(identity, doc)
        if doc["status"] != Status.COMPLETED:
            await self._completion_sent(doc, deadline)
        if doc.get("rating"):
            await self._check_repeat(doc, rating, actor, deadline)
            return
        # The claim makes "once" hold under concurrent calls. Every call publishes the
        # claimed rating, confirmed, before it answers: after a publish that failed, a retry
        # sends it again and so do the resends in the background (resends.py), and the worker
        # recognises a repeat by its content and claimed time. A failed publish keeps its
        # claim: UNAVAILABLE may mean "sent, not confirmed", so the claimed value may still be
        # applied, and releasing the claim would let a different value be answered OK and
        # then refused by the worker as already rated. A different value is refused, after
        # the claimed one is sent again, so no claim stays unpublished while callers keep
        # trying.
        # The call's OK audit event is stored with the claim that this call wins (none is
        # taken for a claim another call won: the interceptor records that call).
        given = to_millisecond(utcnow())
        carried = self.requests.carried_event()
        key = unsent_key("rating", transaction_id)
        try:
            # Noted first: should this process stop between the claim and the confirm, another
            # intake sends the rating (left_unsent.py).
            await self.requests.note_unsent(key, 0, deadline.left())
            try:
                winner, given, by = await self.requests.claim_rating(
                    transaction_id, rating, given, actor, deadline.left(), event=carried
                )
            finally:
                carried.end()
            await self._publish_rating(transaction_id, winner, given, by, deadline)
        except (Unavailable, asyncio.CancelledError):
            # The claim may be made (a commit of unknown outcome) and unsent.
            self.resends.add(key, lambda: self.send_rating(transaction_id))
            raise
        if winner != rating:
            raise AlreadyExists(f"transaction {transaction_id} is already rated")

    async def _completion_sent(self, doc: Document, deadline: Deadline) -> None:
        """PreconditionFailed unless the latest change intake accepted completes the
        transaction: the stored document lags the queue, and a rating right after the
        completion's OK was refused against it (chaos helper: 129 in a 15 s run).

        That completion is published first when it may still be unsent (its publish failed,
        or its caller went first), as a status change sends the one before it: the worker
        holds a rating that comes before its completion only for its retry budget (about 3
        minutes), and a rating sent while an outage kept the completion back longer was
        dead-lettered, the completion stored later without it. While the completion cannot be
        sent the rating is refused UNAVAILABLE, nothing claimed, and the completion waits
        among the resends."""
        transaction_id = doc["_id"]
        latest = None
        if Status(doc["status"]) not in FINISHED:  # stored finished otherwise: none may follow
            latest = await self.requests.latest_change(transaction_id, deadline.left())
        if latest is None or latest["status"] != Status.COMPLETED.value:
            raise PreconditionFailed(f"transaction {transaction_id} is not completed")
        if latest.get("confirmed"):
            return
        try:
            await self.changes.send_again(latest, deadline)
        except (Unavailable, asyncio.CancelledError) as error:
            self.changes.resend_later(transaction_id)
            if isinstance(error, Unavailable):
                raise Unavailable(
                    f"transaction {transaction_id} is completed, but its completion is not sent"
                    f" yet and its rating must follow it ({error.message})"
                ) from error
            raise

    async def send_rating(self, transaction_id: str) -> None:
        """Publish the transaction's claimed rating, if a claim was made: a try of the resends
        (resends.py)."""
        deadline = Deadline(TRY_S)
        claimed = await self.requests.find_rating(transaction_id, deadline.left())
        if claimed is not None:
            # Its completion first, should it be unsent: a claim an earlier intake made may
            # have been claimed ahead of it (_completion_sent).
            await self.changes.send_latest(transaction_id, deadline)
            await self._publish_rating(transaction_id, *claimed, deadline)

    async def _publish_rating(
        self, transaction_id: str, rating: int, given: datetime, by: str, deadline: Deadline
    ) -> None:
        event = events_pb2.TransactionRated(
            transaction_id=transaction_id, rating=rating, time=to_timestamp(given), actor=by
        )
        await publish(
            self.publisher,
            self.topology,
            event,
            routing_key=RATED,
            message_id=f"rating-{transaction_id}",
            deadline=deadline,
        )
        try:
            await self.requests.note_sent(unsent_key("rating", transaction_id), 0, deadline.left())
        except Unavailable:
            log.warning(
                "could not note a published rating; it will be sent again",
                extra={"transaction_id": transaction_id},
            )

    async def _check_repeat(
        self, doc: Document, rating: int, actor: str, deadline: Deadline
    ) -> None:
        """A rating for a rated transaction: OK (nothing to send) when it repeats the claimed
        rating the worker applied, as a retry does after a publish that reached the broker
        but not its confirm; ALREADY_EXISTS for any other. A rating applied without a claim
        (a batch, a migration) gets one recorded here, unused: the document stays rated."""
        if doc["rating"] == rating:
            winner, given, _ = await self.requests.claim_rating(
                doc["_id"], rating, to_millisecond(utcnow()), actor, deadline.left()
            )
            if (winner, given) == (rating, doc.get("rating_time")):
                return
        raise AlreadyExists(f"transaction {doc['_id']} is already rated")
