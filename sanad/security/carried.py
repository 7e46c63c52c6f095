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
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from sanad.security import audit, audit_offer

T = TypeVar("T")


class CarriedEvent:
    """The running call's OK event, for one MongoDB transaction to insert with its change."""

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], results: Mapping[str, str]
    ) -> None:
        self.collection = collection
        # None when the call offers no event: not audited, or no interceptor in front.
        event = audit_offer.take_offered(**results)
        self.document = audit.document_of(event) if event is not None else None
        self._committing = False

    async def run(
        self, session: AsyncClientSession, body: Callable[[AsyncClientSession], Awaitable[T]]
    ) -> T:
        """session.with_transaction(body) with the event inserted after body's writes."""
        try:
            return await session.with_transaction(self._with_event(body))
        except BaseException:
            if self.document is not None and not self._committing:
                audit_offer.give_back_offered()  # the last attempt aborted in its writes
            raise

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
