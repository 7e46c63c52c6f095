"""Tracking use cases: read, list and watch transactions; queue status changes and ratings.

Intake never writes a transaction: it checks a change against the stored
document (which the ingest worker writes) and publishes it, confirmed, for the
worker to apply in order. Two changes racing past this check are settled by the
worker, which dead-letters the one that is no longer legal.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from sanad.amqp.topology import RATED, STATUS_CHANGED, Topology
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.ids import new_id
from sanad.domain.transactions import AGENCY_REPORTABLE, FINISHED, Status, can_change
from sanad.errors import AlreadyExists, Invalid, NotFound, PreconditionFailed, Violation
from sanad.rpc.timestamps import to_timestamp
from sanad.security.identity import Identity
from sanad.v1 import events_pb2
from services.intake import access
from services.intake.deadline import Deadline
from services.intake.listing import ListQuery, encode_token
from services.intake.operations import Publisher

Document = dict[str, Any]
MAX_NOTE_LENGTH = 1000


@dataclass(frozen=True)
class Change:
    """A status change accepted and queued for the transaction's writer."""

    status: Status
    time: datetime
    actor: str
    note: str


class Store(Protocol):
    async def get_transaction(
        self, transaction_id: str, timeout_s: float | None = None
    ) -> Document | None: ...
    async def list_transactions(
        self, query: ListQuery, timeout_s: float | None = None
    ) -> list[Document]: ...
    async def claim_rating(
        self, transaction_id: str, rating: int, given: datetime, timeout_s: float | None = None
    ) -> tuple[int, datetime]: ...


class Tracker:
    """Reads of stored transactions and the changes agencies, centres and beneficiaries make."""

    def __init__(self, store: Store, publisher: Publisher, topology: Topology) -> None:
        self.store = store
        self.publisher = publisher
        self.topology = topology

    async def get(self, transaction_id: str, identity: Identity, deadline: Deadline) -> Document:
        """The stored transaction, if the caller may read it."""
        doc = await self._stored(transaction_id, deadline)
        access.check_read(identity, doc)
        return doc

    async def list(
        self, query: ListQuery, identity: Identity, deadline: Deadline
    ) -> tuple[list[Document], str]:
        """One page and the token of the next ('' on the last page)."""
        center_id, agency_code = access.listing_scope(identity, query.center_id)
        if not center_id:
            raise Invalid([Violation("center_id", "is required")])
        scoped = replace(query, center_id=center_id, agency_code=agency_code)
        docs = await self.store.list_transactions(scoped, deadline.left())
        if len(docs) > scoped.page_size:
            docs = docs[: scoped.page_size]
            return docs, encode_token(docs[-1])
        return docs, ""

    async def watch(
        self, transaction_id: str, identity: Identity, deadline: Deadline, poll_s: float
    ) -> AsyncIterator[Document]:
        """The transaction now and after each change, until it finishes."""
        doc = await self.get(transaction_id, identity, deadline)
        seen = None
        while True:
            version = (doc["status"], len(doc["history"]), doc.get("rating", 0))
            if version != seen:
                seen = version
                yield doc
            if Status(doc["status"]) in FINISHED:
                return
            await asyncio.sleep(poll_s)
            doc = await self._stored(transaction_id, deadline)

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
        doc = await self._stored(transaction_id, deadline)
        access.check_update(identity, doc)
        return await self._change(doc, status, note, actor, deadline)

    async def cancel(
        self, transaction_id: str, reason: str, actor: str, identity: Identity, deadline: Deadline
    ) -> Change:
        """Cancel a transaction that has not finished."""
        if len(reason) > MAX_NOTE_LENGTH:
            raise Invalid([Violation("reason", f"must be at most {MAX_NOTE_LENGTH} characters")])
        doc = await self._stored(transaction_id, deadline)
        access.check_cancel(identity, doc)
        return await self._change(doc, Status.CANCELLED, reason, actor, deadline)

    async def rate(
        self, transaction_id: str, rating: int, actor: str, identity: Identity, deadline: Deadline
    ) -> None:
        """The beneficiary's one rating of a completed transaction."""
        if not 1 <= rating <= 5:
            raise Invalid([Violation("rating", "must be from 1 to 5")])
        doc = await self._stored(transaction_id, deadline)
        access.check_rate(identity, doc)
        if doc["status"] != Status.COMPLETED:
            raise PreconditionFailed(f"transaction {transaction_id} is not completed")
        if doc.get("rating"):
            raise AlreadyExists(f"transaction {transaction_id} is already rated")
        # The claim makes "once" hold under concurrent calls. A retry of the same
        # rating publishes the same event again (the first may not have been
        # confirmed); the worker recognises it by its content and time.
        given = to_millisecond(utcnow())
        winner, given = await self.store.claim_rating(
            transaction_id, rating, given, deadline.left()
        )
        if winner != rating:
            raise AlreadyExists(f"transaction {transaction_id} is already rated")
        event = events_pb2.TransactionRated(
            transaction_id=transaction_id, rating=rating, time=to_timestamp(given), actor=actor
        )
        await self._publish(RATED, event, f"rating-{transaction_id}", deadline)

    async def _change(
        self, doc: Document, status: Status, note: str, actor: str, deadline: Deadline
    ) -> Change:
        current = Status(doc["status"])
        if not can_change(current, status):
            raise PreconditionFailed(
                f"transaction {doc['_id']} cannot go from {current.value} to {status.value}"
            )
        change = Change(status, utcnow(), actor, note)
        event = events_pb2.TransactionStatusChanged(
            transaction_id=doc["_id"],
            change_id=new_id(),
            status=f"TRANSACTION_STATUS_{status.value}",
            time=to_timestamp(change.time),
            actor=actor,
            note=note,
        )
        await self._publish(STATUS_CHANGED, event, event.change_id, deadline)
        return change

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

    async def _stored(self, transaction_id: str, deadline: Deadline) -> Document:
        found = None
        if transaction_id:
            found = await self.store.get_transaction(transaction_id, deadline.left())
        if found is None:
            raise NotFound(f"transaction {transaction_id!r} not found")
        return found
