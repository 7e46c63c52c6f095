"""A store's MongoDB transaction inserts the call's OK audit event after its own writes, the same
event in every attempt; an event whose transaction aborted in its writes is given back. A store
that runs its own transaction (attempt) gives it back only when the call ends without a commit
that stored it, or may have."""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from sanad.security import audit_offer
from sanad.security.audit import AuditEvent
from sanad.security.audit_offer import Offer
from sanad.security.carried import CarriedEvent


class Conflict(Exception):
    """What makes the fake session run the transaction again."""


class FakeSession:
    """with_transaction as PyMongo runs it: the body again after a Conflict in it or in the
    commit (the first `commit_conflicts` commits), and a commit that may fail for good."""

    def __init__(self, commit_conflicts: int = 0, commit_error: BaseException | None = None):
        self.commit_conflicts = commit_conflicts
        self.commit_error = commit_error
        self.attempts = 0

    async def with_transaction(self, body: Callable[[Any], Awaitable[Any]]) -> Any:
        while True:
            self.attempts += 1
            try:
                result = await body(self)
            except Conflict:
                continue
            if self.attempts <= self.commit_conflicts:
                continue
            if self.commit_error is not None:
                raise self.commit_error
            return result


class FakeCollection:
    def __init__(self) -> None:
        self.inserted: list[dict[str, Any]] = []

    async def insert_one(self, document: dict[str, Any], session: Any) -> None:
        self.inserted.append(document)


def build(results: Mapping[str, str]) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        subject="admin",
        role="admin",
        agency_code="",
        center_id="",
        rpc="/sanad.v1.RegistryService/RegisterCenter",
        target={"center.licence.number": "L1", **results},
        outcome="OK",
        request_id="req-1",
        recorded_by="registry",
    )


def offer() -> Offer:
    """The call's event as the security interceptor offers it (to this test's task only)."""
    return audit_offer.offer(build)


async def test_the_event_is_inserted_by_the_attempt_that_commits() -> None:
    offered, collection, session = offer(), FakeCollection(), FakeSession()
    writes: list[str] = []

    async def body(session: Any) -> str:
        writes.append(f"change {session.attempts}")
        if session.attempts == 1:
            raise Conflict  # before the event's insert: that attempt is rolled back
        return "saved"

    carried = CarriedEvent(collection, {"center.id": "C1"})  # type: ignore[arg-type]
    assert await carried.run(session, body) == "saved"  # type: ignore[arg-type]
    assert writes == ["change 1", "change 2"]
    (document,) = collection.inserted
    assert document["target"] == {"center.licence.number": "L1", "center.id": "C1"}
    assert (document["outcome"], document["request_id"]) == ("OK", "req-1")
    assert offered.taken


async def test_a_transaction_run_again_inserts_the_same_event() -> None:
    offer()
    collection, session = FakeCollection(), FakeSession(commit_conflicts=1)

    async def body(session: Any) -> None:
        return None

    await CarriedEvent(collection, {}).run(session, body)  # type: ignore[arg-type]
    first, second = collection.inserted
    assert first == second  # one _id: a retry can never store two events


async def test_a_transaction_aborted_in_its_writes_gives_the_event_back() -> None:
    offered, collection = offer(), FakeCollection()

    async def body(session: Any) -> None:
        raise ValueError("duplicate licence number")

    carried = CarriedEvent(collection, {"center.id": "C1"})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await carried.run(FakeSession(), body)  # type: ignore[arg-type]
    assert collection.inserted == []
    # The interceptor records the failure as if no handler had taken the event.
    assert not offered.taken
    assert offered.results == {}


async def test_a_commit_that_may_have_been_applied_keeps_the_event_taken() -> None:
    offered, collection = offer(), FakeCollection()

    async def body(session: Any) -> None:
        return None

    carried = CarriedEvent(collection, {"center.id": "C1"})  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await carried.run(FakeSession(commit_error=TimeoutError()), body)  # type: ignore[arg-type]
    assert len(collection.inserted) == 1
    # The OK event may be stored with the change: the failure's event names the same centre.
    assert offered.taken
    assert offered.results == {"center.id": "C1"}


async def test_a_call_that_offers_no_event_inserts_none() -> None:
    collection = FakeCollection()

    async def body(session: Any) -> str:
        return "saved"

    carried = CarriedEvent(collection, {"center.id": "C1"})  # type: ignore[arg-type]
    assert await carried.run(FakeSession(), body) == "saved"  # type: ignore[arg-type]
    assert collection.inserted == []


class OwnSession:
    """start_transaction as a store that runs its own transaction uses it: the block's end
    commits, unless the block aborted; the commit may fail with `commit_error`."""

    def __init__(self, commit_error: BaseException | None = None) -> None:
        self.commit_error = commit_error
        self.aborted = False
        self.committed = 0

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        self.aborted = False
        yield
        if not self.aborted:
            if self.commit_error is not None:
                raise self.commit_error
            self.committed += 1

    async def start_transaction(self) -> Any:
        return self._running()

    async def abort_transaction(self) -> None:
        self.aborted = True


def labelled(label: str) -> OperationFailure:
    return OperationFailure("commit failed", 112, {"errorLabels": [label]})


async def accepting(session: Any) -> bool:
    return True


async def losing(session: Any) -> bool:
    return False  # a compare-and-set that another change won


async def test_a_lost_try_stores_nothing_and_gives_nothing_back_until_the_call_ends() -> None:
    offered, collection, session = offer(), FakeCollection(), OwnSession()
    carried = CarriedEvent(collection, {})  # type: ignore[arg-type]
    assert not await carried.attempt(session, losing)  # type: ignore[arg-type]
    assert (collection.inserted, session.committed) == ([], 0)
    assert offered.taken  # the next try carries the same event
    carried.end()  # the call accepted nothing: the interceptor records it
    assert not offered.taken


async def test_the_try_that_commits_stores_the_event_once_and_keeps_it() -> None:
    offered, collection, session = offer(), FakeCollection(), OwnSession()
    carried = CarriedEvent(collection, {})  # type: ignore[arg-type]
    assert not await carried.attempt(session, losing)  # type: ignore[arg-type]
    assert await carried.attempt(session, accepting)  # type: ignore[arg-type]
    carried.end()
    (document,) = collection.inserted
    assert (document["outcome"], document["request_id"]) == ("OK", "req-1")
    assert (session.committed, offered.taken) == (1, True)


async def test_a_commit_that_certainly_failed_gives_the_event_back_when_the_call_ends() -> None:
    offered = offer()
    session = OwnSession(commit_error=labelled("TransientTransactionError"))
    carried = CarriedEvent(FakeCollection(), {})  # type: ignore[arg-type]
    with pytest.raises(OperationFailure):
        await carried.attempt(session, accepting)  # type: ignore[arg-type]
    carried.end()
    assert not offered.taken


async def test_a_commit_whose_answer_was_lost_keeps_the_event_taken() -> None:
    offered = offer()
    session = OwnSession(commit_error=labelled("UnknownTransactionCommitResult"))
    carried = CarriedEvent(FakeCollection(), {})  # type: ignore[arg-type]
    with pytest.raises(OperationFailure):
        await carried.attempt(session, accepting)  # type: ignore[arg-type]
    carried.end()
    assert offered.taken  # the change and its OK event may be stored


async def test_a_try_failing_in_its_writes_gives_the_event_back_when_the_call_ends() -> None:
    offered, collection = offer(), FakeCollection()

    async def failing(session: Any) -> bool:
        raise OperationFailure("no answer", 50)

    carried = CarriedEvent(collection, {})  # type: ignore[arg-type]
    with pytest.raises(OperationFailure):
        await carried.attempt(OwnSession(), failing)  # type: ignore[arg-type]
    carried.end()
    assert (collection.inserted, offered.taken) == ([], False)


async def test_a_store_transaction_told_not_to_take_leaves_the_event_to_the_interceptor() -> None:
    offered, collection = offer(), FakeCollection()
    carried = CarriedEvent(collection, {}, take=False)  # type: ignore[arg-type]
    assert await carried.attempt(OwnSession(), accepting)  # type: ignore[arg-type]
    carried.end()
    assert (collection.inserted, offered.taken) == ([], False)
