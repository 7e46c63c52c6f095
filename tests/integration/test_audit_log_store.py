"""The audit log against the real MongoDB-wire server: newest first, time windows, one index."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from sanad.domain.ids import id_time_ms
from sanad.security.audit import AuditEvent, AuditLog, AuditQuery

pytestmark = pytest.mark.integration

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def audit(mongo_url: str, database_name: str) -> AsyncIterator[AuditLog]:
    client: AsyncMongoClient[dict] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield AuditLog(client[database_name])
    await client.close()


def event(at: datetime, subject: str = "desk-1") -> AuditEvent:
    return AuditEvent(
        time=at,
        subject=subject,
        role="centre",
        agency_code="",
        center_id="C1",
        rpc="/sanad.v1.IntakeService/SubmitTransaction",
        target={"center_id": "C1"},
        outcome="OK",
        request_id="r",
        recorded_by="intake",
    )


async def test_an_event_id_carries_its_time_to_the_millisecond() -> None:
    at = NOON + timedelta(microseconds=1_999)
    assert id_time_ms(event(at).id) == int(NOON.timestamp() * 1000) + 1


async def test_events_list_newest_first_whatever_order_they_were_written_in(
    audit: AuditLog,
) -> None:
    times = [NOON + timedelta(milliseconds=ms) for ms in (5, 1, 9, 3)]
    for at in times:
        await audit.record(event(at))
    listed, _ = await audit.find(AuditQuery())
    assert [e.time for e in listed] == sorted(times, reverse=True)


async def test_a_time_window_includes_its_start_and_excludes_its_end(audit: AuditLog) -> None:
    for ms in range(10):
        await audit.record(event(NOON + timedelta(milliseconds=ms)))
    window = AuditQuery(
        start=NOON + timedelta(milliseconds=3), end=NOON + timedelta(milliseconds=7)
    )
    listed, _ = await audit.find(window)
    assert [e.time for e in listed] == [NOON + timedelta(milliseconds=ms) for ms in (6, 5, 4, 3)]
    # Naive datetimes are UTC, as BSON reads them.
    naive = AuditQuery(start=(NOON + timedelta(milliseconds=8)).replace(tzinfo=None))
    listed, _ = await audit.find(naive)
    assert [e.time for e in listed] == [NOON + timedelta(milliseconds=ms) for ms in (9, 8)]


async def test_a_window_combines_with_the_other_filters(audit: AuditLog) -> None:
    await audit.record(event(NOON, subject="desk-1"))
    await audit.record(event(NOON + timedelta(seconds=1), subject="desk-2"))
    await audit.record(event(NOON + timedelta(seconds=2), subject="desk-1"))
    listed, _ = await audit.find(
        AuditQuery(subject="desk-1", start=NOON + timedelta(milliseconds=1))
    )
    assert [(e.subject, e.time) for e in listed] == [("desk-1", NOON + timedelta(seconds=2))]


async def test_the_trail_keeps_no_index_but_its_ids(audit: AuditLog) -> None:
    await audit.record(event(NOON))
    assert list(await audit.collection.index_information()) == ["_id_"]
