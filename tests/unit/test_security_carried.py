"""A store's MongoDB transaction inserts the call's OK audit event after its own writes, the same
event in every attempt; an event whose transaction aborted in its writes is given back."""

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

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
