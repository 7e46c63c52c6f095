"""Audit events of calls made while the database is down reach the trail once it is back."""

from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from sanad.security.audit import AuditEvent
from sanad.security.audit_listing import AuditListing, AuditQuery
from sanad.security.audit_log import AuditLog
from tests.integration.conftest import StoppableDatabase, eventually

pytestmark = pytest.mark.integration


def event(n: int) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        subject="admin",
        role="admin",
        agency_code="",
        center_id="",
        rpc="/sanad.v1.RegistryService/SuspendLicence",
        target={"center_id": f"C{n}"},
        outcome="UNAVAILABLE",
        request_id=f"outage-{n}",
        recorded_by="registry",
    )


async def test_events_recorded_during_an_outage_are_in_the_trail_after_it(
    stoppable_database: StoppableDatabase, database_name: str
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(
        stoppable_database.url, serverSelectionTimeoutMS=300, tz_aware=True
    )
    trail = AuditLog(client[database_name], retry_s=0.2)
    listing = AuditListing(client[database_name])
    try:
        await trail.record(event(0))
        stoppable_database.stop()
        for n in (1, 2, 3):
            await trail.record(event(n))
        assert len(trail.deferred) == 3

        stoppable_database.start()

        async def all_stored() -> bool:
            try:
                events, _ = await listing.find(AuditQuery(subject="admin"))
            except PyMongoError:  # the server is still starting
                return False
            return len(events) == 4

        await eventually(all_stored, within_s=30)
        events, _ = await listing.find(AuditQuery(subject="admin"))
        # Newest first, each once, whenever it was written.
        assert [e.request_id for e in events] == ["outage-3", "outage-2", "outage-1", "outage-0"]
        assert not trail.deferred
    finally:
        await trail.drain()
        await client.close()
