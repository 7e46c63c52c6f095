"""Audit events MongoDB does not take wait in the process and are written once it answers again;
what cannot be kept is logged in full as lost and counted."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import BulkWriteError, ServerSelectionTimeoutError

from sanad.security.audit import AuditEvent
from sanad.security.audit_log import AuditLog
from sanad.telemetry.metrics import AUDIT_EVENTS_DEFERRED, AUDIT_EVENTS_LOST
from tests.unit.waiting import until


class FlakyCollection:
    """insert_many of a collection whose server can be down; ids are unique, as in MongoDB."""

    def __init__(self) -> None:
        self.down = False
        self.stored: dict[str, dict[str, Any]] = {}

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> None:
        if self.down:
            raise ServerSelectionTimeoutError("no server answered")
        errors = []
        for index, document in enumerate(documents):
            if document["_id"] in self.stored:
                errors.append({"index": index, "code": 11000, "errmsg": "duplicate key"})
            else:
                self.stored[document["_id"]] = document
        if errors:
            raise BulkWriteError({"writeErrors": errors})


class Database:
    def __init__(self, collection: FlakyCollection) -> None:
        self.collection = collection

    def __getitem__(self, name: str) -> FlakyCollection:
        return self.collection


def event(n: int) -> AuditEvent:
    return AuditEvent(
        time=datetime(2026, 12, 3, 9, 0, n, tzinfo=UTC),
        subject=f"admin-{n}",
        role="admin",
        agency_code="",
        center_id="",
        rpc="/sanad.v1.RegistryService/RegisterCenter",
        target={"center_id": f"C{n}"},
        outcome="UNAVAILABLE",
        request_id=f"r-{n}",
        recorded_by="registry",
    )


def audit_log(collection: FlakyCollection, **options: Any) -> AuditLog:
    return AuditLog(Database(collection), **options)  # type: ignore[arg-type]


def lost() -> float:
    return AUDIT_EVENTS_LOST._value.get()


async def test_events_recorded_while_mongodb_is_down_are_written_once_it_answers() -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=0.02)
    collection.down = True

    for n in range(3):
        await trail.record(event(n))

    assert collection.stored == {}
    assert len(trail.deferred) == 3
    assert AUDIT_EVENTS_DEFERRED._value.get() == 3
    collection.down = False
    await until(lambda: not trail.deferred)
    assert sorted(doc["subject"] for doc in collection.stored.values()) == [
        "admin-0",
        "admin-1",
        "admin-2",
    ]
    assert AUDIT_EVENTS_DEFERRED._value.get() == 0
    await trail.drain()


async def test_an_event_whose_first_write_reached_the_server_is_not_written_twice() -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=0.02)
    stored_anyway, other = event(1), event(2)
    collection.down = True
    await trail.record(stored_anyway)
    await trail.record(other)
    # The first write timed out on our side but the server had taken it.
    collection.stored[stored_anyway.id] = {"_id": stored_anyway.id, "subject": "admin-1"}

    collection.down = False
    await until(lambda: not trail.deferred)

    assert sorted(collection.stored) == sorted([stored_anyway.id, other.id])
    await trail.drain()


async def test_events_still_waiting_when_the_process_stops_are_logged_as_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=60)
    collection.down = True
    before = lost()
    await trail.record(event(7))

    with caplog.at_level(logging.ERROR, logger="sanad.audit"):
        await trail.drain()

    assert lost() == before + 1
    assert not trail.deferred
    lines = [r.getMessage() for r in caplog.records if "audit event lost" in r.getMessage()]
    assert len(lines) == 1
    assert '"subject": "admin-7"' in lines[0]
    assert '"request_id": "r-7"' in lines[0]


async def test_a_drain_writes_what_waits_when_mongodb_is_back() -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=60)
    collection.down = True
    await trail.record(event(3))
    collection.down = False
    before = lost()

    await trail.drain()

    assert [doc["subject"] for doc in collection.stored.values()] == ["admin-3"]
    assert lost() == before


async def test_beyond_the_limit_an_event_is_logged_as_lost_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=60, max_deferred=2)
    collection.down = True
    before = lost()

    with caplog.at_level(logging.ERROR, logger="sanad.audit"):
        for n in range(3):
            await trail.record(event(n))

    assert len(trail.deferred) == 2
    assert lost() == before + 1
    assert any('"subject": "admin-2"' in r.getMessage() for r in caplog.records)
    collection.down = False
    await trail.drain()
    assert len(collection.stored) == 2


class SlowCollection(FlakyCollection):
    """Answers an insert only when released: a call can be cancelled while its event waits."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> None:
        await self.release.wait()
        await super().insert_many(documents, ordered)


async def test_the_event_of_a_call_cancelled_while_it_is_written_is_still_kept() -> None:
    collection = SlowCollection()
    trail = audit_log(collection, retry_s=60)
    collection.down = True
    call = asyncio.create_task(trail.record(event(5)))
    await asyncio.sleep(0.01)

    call.cancel()  # the server stopping: calls still running are cancelled
    with pytest.raises(asyncio.CancelledError):
        await call
    collection.release.set()
    await until(lambda: len(trail.deferred) == 1)

    collection.down = False
    await trail.drain()
    assert [doc["subject"] for doc in collection.stored.values()] == ["admin-5"]


async def test_an_event_failing_after_the_drain_is_logged_as_lost_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collection = FlakyCollection()
    trail = audit_log(collection, retry_s=60)
    await trail.drain()
    collection.down = True
    before = lost()

    with caplog.at_level(logging.ERROR, logger="sanad.audit"):
        await trail.record(event(8))

    assert lost() == before + 1
    assert not trail.deferred
    assert any('"subject": "admin-8"' in r.getMessage() for r in caplog.records)


class RefusingCollection(FlakyCollection):
    """Refuses one document for good (a write error other than a duplicate key)."""

    def __init__(self, refused_subject: str) -> None:
        super().__init__()
        self.refused_subject = refused_subject

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> None:
        if self.down:
            raise ServerSelectionTimeoutError("no server answered")
        errors = []
        for index, document in enumerate(documents):
            if document["subject"] == self.refused_subject:
                errors.append({"index": index, "code": 121, "errmsg": "validation failed"})
            else:
                self.stored[document["_id"]] = document
        if errors:
            raise BulkWriteError({"writeErrors": errors})


async def test_an_event_refused_for_good_is_logged_as_lost_and_blocks_none_behind_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collection = RefusingCollection("admin-1")
    trail = audit_log(collection, retry_s=0.02)
    collection.down = True
    for n in range(3):
        await trail.record(event(n))
    before = lost()

    with caplog.at_level(logging.ERROR, logger="sanad.audit"):
        collection.down = False
        await until(lambda: not trail.deferred)

    assert sorted(doc["subject"] for doc in collection.stored.values()) == ["admin-0", "admin-2"]
    assert lost() == before + 1
    assert any("refused by MongoDB" in r.getMessage() for r in caplog.records)
    await trail.drain()


class HungCollection(FlakyCollection):
    """A server that takes the write and answers nothing until released."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool = True) -> None:
        await self.answer.wait()
        await super().insert_many(documents, ordered)


async def test_a_call_waits_for_its_event_no_longer_than_its_caller_waits() -> None:
    # A MongoDB that hangs held every audited answer past its caller's deadline: the caller got
    # DEADLINE_EXCEEDED instead of the UNAVAILABLE its call had reached.
    collection = HungCollection()
    trail = audit_log(collection)

    await asyncio.wait_for(trail.record(event(1), within_s=0.05), timeout=2)

    assert len(trail._writing) == 1  # still being written, not given up
    collection.answer.set()
    await trail.drain()
    assert len(collection.stored) == 1
    assert not trail.deferred


async def test_without_a_deadline_a_call_waits_for_its_event() -> None:
    collection = HungCollection()
    trail = audit_log(collection)
    recording = asyncio.create_task(trail.record(event(1)))
    await asyncio.sleep(0.05)

    assert not recording.done()
    collection.answer.set()
    await asyncio.wait_for(recording, timeout=2)
    assert len(collection.stored) == 1
