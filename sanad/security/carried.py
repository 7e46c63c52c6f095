"""A call's OK audit event inserted in the MongoDB transaction of the change the call makes.

The change and its event then commit together (DESIGN section 6): a process that dies after the
commit, or a database that takes the change but would not take a later write of the event,
cannot leave a change the trail misses, and an aborted change leaves no OK event.

The event is taken from the security interceptor (sanad.security.audit_offer.take_offered)
before the transaction starts, so every attempt PyMongo's with_transaction makes inserts the
same event, under the same `_id`: a retried attempt or commit stores it once. When the
transaction fails in an attempt's own writes, nothing was stored, and the event is given back:
the interceptor then records the call's failure exactly as it would have without this seam. When
only the commit's answer is missing, the change and its OK event may be stored after all; the
interceptor's failure event then names the same results, so the trail shows that both belong to
one call.

A store that runs its own transaction, and judges a failed try by its own rules (intake's
compare-and-set of a status change), takes the event once for the whole call, runs each try
through attempt(), and calls end() when the call ends: a try that accepted nothing (a lost
compare-and-set) gives nothing back by itself, so the last try, or a refusal after it, decides.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from sanad.security import audit, audit_offer

T = TypeVar("T")


class CarriedEvent:
    """The running call's OK event, for one MongoDB transaction to insert with its change."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        results: Mapping[str, str],
        *,
        take: bool = True,
    ) -> None:
        self.collection = collection
        # None when the call offers no event (not audited, or no interceptor in front), or when
        # told not to take it (a store's transaction that carries nothing).
        event = audit_offer.take_offered(**results) if take else None
        self.document = audit.document_of(event) if event is not None else None
        # Set once a commit holding the event is sent: from then on it is, or may be, stored.
        self._committing = False

    async def run(
        self, session: AsyncClientSession, body: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> T:
        """session.with_transaction(body) with the event inserted after body's writes."""
        try:
            return await session.with_transaction(self._with_event(body))
        except BaseException:
            self.end()  # gives it back when the last attempt aborted in its writes
            raise

    async def attempt(
        self, session: AsyncClientSession, writes: Callable[[AsyncClientSession], Awaitable[bool]]
    ) -> bool:
        """One try of a transaction the store runs itself (start_transaction): writes(session),
        then the event, committed together. When writes answers False (a lost compare-and-set)
        the transaction is aborted and neither is stored. Errors are the store's to map."""
        self._committing = False
        try:
            async with await session.start_transaction():
                if not await writes(session):
                    await session.abort_transaction()
                    return False
                if self.document is not None:
                    await self.collection.insert_one(self.document, session=session)
                self._committing = True  # whatever fails from here on is the commit
        except PyMongoError as error:
            if error.has_error_label("TransientTransactionError"):
                self._committing = False  # the commit certainly failed: nothing was stored
            raise
        return True

    def end(self) -> None:
        """The call ends: give the event back unless a commit stored it or may have, so the
        interceptor records a call that stored no change (refused, failed, answered from an
        earlier call) exactly as it would have without this seam."""
        if self.document is not None and not self._committing:
            audit_offer.give_back_offered()
            self.document = None

    def _with_event(
        self, body: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> Callable[[AsyncClientSession], Awaitable[T]]:
        async def attempt(session: AsyncClientSession) -> T:
            self._committing = False
            result = await body(session)
            if self.document is not None:
                await self.collection.insert_one(self.document, session=session)
            self._committing = True  # whatever fails from here on is the commit
            return result

        return attempt
