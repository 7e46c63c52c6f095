"""The audit log and its listing against the real MongoDB-wire server: newest first, time
windows, one index."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad.domain.ids import id_time_ms
from sanad.security.audit import AuditEvent
from sanad.security.audit_listing import AuditListing, AuditQuery
from sanad.security.audit_log import AuditLog

pytestmark = pytest.mark.integration

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[AsyncDatabase[dict]]:
    client: AsyncMongoClient[dict] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[database_name]
    await client.close()


@pytest.fixture
def audit(db: AsyncDatabase[dict]) -> AuditLog:
    return AuditLog(db)


@pytest.fixture
def listing(db: AsyncDatabase[dict]) -> AuditListing:
    return AuditListing(db)


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
    audit: AuditLog, listing: AuditListing
) -> None:
    times = [NOON + timedelta(milliseconds=ms) for ms in (5, 1, 9, 3)]
    for at in times:
        await audit.record(event(at))
    listed, _ = await listing.find(AuditQuery())
    assert [e.time for e in listed] == sorted(times, reverse=True)


async def test_a_time_window_includes_its_start_and_excludes_its_end(
    audit: AuditLog, listing: AuditListing
) -> None:
    for ms in range(10):
        await audit.record(event(NOON + timedelta(milliseconds=ms)))
    window = AuditQuery(
        start=NOON + timedelta(milliseconds=3), end=NOON + timedelta(milliseconds=7)
    )
    listed, _ = await listing.find(window)
    assert [e.time for e in listed] == [NOON + timedelta(milliseconds=ms) for ms in (6, 5, 4, 3)]
    # Naive datetimes are UTC, as BSON reads them.
    naive = AuditQuery(start=(NOON + timedelta(milliseconds=8)).replace(tzinfo=None))
    listed, _ = await listing.find(naive)
    assert [e.time for e in listed] == [NOON + timedelta(milliseconds=ms) for ms in (9, 8)]


async def test_a_window_combines_with_the_other_filters(
    audit: AuditLog, listing: AuditListing
) -> None:
    await audit.record(event(NOON, subject="desk-1"))
    await audit.record(event(NOON + timedelta(seconds=1), subject="desk-2"))
    await audit.record(event(NOON + timedelta(seconds=2), subject="desk-1"))
    listed, _ = await listing.find(
        AuditQuery(subject="desk-1", start=NOON + timedelta(milliseconds=1))
    )
    assert [(e.subject, e.time) for e in listed] == [("desk-1", NOON + timedelta(seconds=2))]


async def test_the_trail_keeps_no_index_but_its_ids(audit: AuditLog) -> None:
    await audit.record(event(NOON))
    assert list(await audit.collection.index_information()) == ["_id_"]


async def test_an_event_written_between_pages_is_listed_later_only_if_older_than_the_last_read(
    audit: AuditLog, listing: AuditListing
) -> None:
    for seconds in (10, 20, 30, 40):
        await audit.record(event(NOON + timedelta(seconds=seconds)))
    first, token = await listing.find(AuditQuery(page_size=2))
    assert [e.time for e in first] == [NOON + timedelta(seconds=s) for s in (40, 30)]
    # Written between the pages: a new call's, and two kept back (MongoDB was away), one with
    # a time inside the page read, one with a time before its last event.
    for seconds in (50, 35, 25):
        await audit.record(event(NOON + timedelta(seconds=seconds)))
    second, token = await listing.find(AuditQuery(page_size=10, page_token=token))
    assert [e.time for e in second] == [NOON + timedelta(seconds=s) for s in (25, 20, 10)]
    assert not token
