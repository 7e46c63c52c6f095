"""Intake's tracking stores in memory, and the calls the tracking tests make: a stored
transaction, a tracker over a fake store and a recording publisher, a status update, a rating."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.transactions import Status
from sanad.security.carried import CarriedEvent
from sanad.security.identity import DEV_ADMIN, Identity, Role
from services.intake.listing import ListQuery
from services.intake.request_store import unsent_key
from services.intake.tracking import Tracker
from tests.unit.fakes import RecordingPublisher

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
ROP = Identity("rop-system", Role.MINISTRY, agency_code="ROP")
MOL = Identity("mol-system", Role.MINISTRY, agency_code="MOL")
CENTRE = Identity("abraj", Role.CENTRE, center_id="C1")
OTHER_CENTRE = Identity("nizwa", Role.CENTRE, center_id="C2")


def stored(status: Status = Status.RECORDED, **extra: Any) -> dict[str, Any]:
    doc = {
        "_id": "T1",
        "request_id": "r-1",
        "center_id": "C1",
        "service_code": "ROP-VISA",
        "agency_code": "ROP",
        "service_version": 1,
        "channel": "COUNTER",
        "fee_baisa": 5000,
        "beneficiary_masked": "*****678",
        "submit_time": T0,
        "status": status.value,
        "history": [{"status": "SUBMITTED", "time": T0}, {"status": status.value, "time": T0}],
        "rating": 0,
    }
    doc.update(extra)
    return doc


class AuditCollection:
    """The audit events accepted changes carried in (stored: their transactions commit)."""

    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []

    async def insert_one(self, document: dict[str, Any], session: Any) -> None:
        self.stored.append(document)


class Transaction:
    """A session whose transaction commits unless aborted (the fake's writes are applied by
    the time they return, and only when they accept: an aborted try wrote nothing)."""

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        yield

    async def start_transaction(self) -> Any:
        return self._running()

    async def abort_transaction(self) -> None:
        return None


class FakeStore:
    """Intake's two stores in one: the stored transactions and intake's own records."""

    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {d["_id"]: d for d in docs}
        self.ratings: dict[str, tuple[int, datetime, str]] = {}
        self.timeouts: list[float | None] = []
        self.changes: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.audit_log = AuditCollection()
        self.attempts = 0  # tries to accept a change
        # intake_unsent: key -> (since, sequence).
        self.unsent: dict[str, tuple[datetime, int]] = {}

    async def get_transaction(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        self.timeouts.append(timeout_s)
        await asyncio.sleep(0)
        return self.docs.get(transaction_id)

    async def list_transactions(self, query: ListQuery, timeout_s: float | None = None) -> Any:
        return [d for d in self.docs.values() if d["center_id"] == query.center_id]

    async def claim_rating(
        self,
        transaction_id: str,
        rating: int,
        given: datetime,
        actor: str,
        timeout_s: float | None = None,
        *,
        event: CarriedEvent | None = None,
    ) -> tuple[int, datetime, str]:
        return self.ratings.setdefault(transaction_id, (rating, given, actor))

    async def find_rating(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        return self.ratings.get(transaction_id)

    async def note_unsent(self, key: str, sequence: int, timeout_s: float | None = None) -> None:
        self.unsent[key] = (datetime.now(UTC), sequence)

    async def note_sent(self, key: str, sequence: int, timeout_s: float | None = None) -> None:
        if key in self.unsent and self.unsent[key][1] <= sequence:
            del self.unsent[key]

    async def left_unsent(
        self, before: datetime, limit: int, timeout_s: float | None = None
    ) -> list[tuple[str, datetime]]:
        notes = sorted((since, key) for key, (since, _) in self.unsent.items() if since < before)
        return [(key, since) for since, key in notes[:limit]]

    async def forget_unsent(
        self, key: str, since: datetime, timeout_s: float | None = None
    ) -> None:
        if key in self.unsent and self.unsent[key][0] == since:
            del self.unsent[key]

    async def latest_change(self, transaction_id: str, timeout_s: float | None = None) -> Any:
        await asyncio.sleep(0)  # lets concurrent changes interleave, as round trips do
        found = self.changes.get(transaction_id)
        return None if found is None else dict(found)

    def carried_event(self) -> CarriedEvent:
        return CarriedEvent(self.audit_log, {})  # type: ignore[arg-type]

    async def accept_change(
        self,
        transaction_id: str,
        previous: int,
        record: dict[str, Any],
        timeout_s: Any = None,
        *,
        answer: dict[str, Any] | None = None,
        event: CarriedEvent | None = None,
    ) -> bool:
        self.attempts += 1

        def writes(_: Any) -> Awaitable[bool]:
            return self._accept(transaction_id, previous, record, answer)

        if event is None:
            return await writes(None)
        return await event.attempt(Transaction(), writes)  # type: ignore[arg-type]

    async def _accept(
        self,
        transaction_id: str,
        previous: int,
        record: dict[str, Any],
        answer: dict[str, Any] | None,
    ) -> bool:
        await asyncio.sleep(0)
        if self.changes.get(transaction_id, {}).get("sequence", 0) != previous:
            return False
        if answer is not None:  # both or neither, as in one MongoDB transaction
            if answer["_id"] in self.answers:
                return False
            self.answers[answer["_id"]] = dict(answer)
        self.changes[transaction_id] = dict(record)
        return True

    async def find_change_request(self, key: str, timeout_s: Any = None) -> Any:
        await asyncio.sleep(0)
        found = self.answers.get(key)
        return None if found is None else dict(found)

    async def confirm_change(
        self, transaction_id: str, sequence: int, timeout_s: Any = None
    ) -> None:
        if self.changes[transaction_id]["sequence"] == sequence:
            self.changes[transaction_id]["confirmed"] = True
        await self.note_sent(unsent_key("status", transaction_id), sequence)


def tracker(*docs: dict[str, Any]) -> tuple[Tracker, RecordingPublisher]:
    store, publisher = FakeStore(*docs), RecordingPublisher()
    return Tracker(store, store, publisher, Topology("t")), publisher


async def update(t: Tracker, status: Status | None, who: Identity = DEV_ADMIN) -> Any:
    return await t.update_status(
        "T1", status, "note", actor="agency", identity=who, deadline=Deadline(5.0)
    )


async def rate(t: Tracker, rating: int, who: Identity = DEV_ADMIN) -> None:
    await t.rate("T1", rating, actor="centre", identity=who, deadline=Deadline(None))
