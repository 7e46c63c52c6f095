"""The ingest worker creates the outcome series of where transactions were recently submitted as
soon as MongoDB answers, so the first completion or rating it counts after a start is seen by
increase() too (a process that applied nothing there yet exported those series only from their
first increment, already 1). Read from the real rollups: the yearly rollups' wilayats, then the
governorates and agencies of each wilayat's daily rollups since a day; and, while it runs, of
the places new in today's rollups (the batch worker's transactions, whose outcomes it counts)."""

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from sanad import rollups
from sanad.domain.clock import utcnow
from tests.integration.conftest import eventually, in_process_settings
from workers.ingest import app as app_module
from workers.ingest.app import OPEN_DAYS, build_app
from workers.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


def daily(day: str, governorate: str, wilayat: str, agency: str) -> dict[str, object]:
    return {
        "_id": f"{day}|C-{wilayat}|S-{agency}|{wilayat}",
        "day": day,
        "center_id": f"C-{wilayat}",
        "service_code": f"S-{agency}",
        "governorate_code": governorate,
        "wilayat_code": wilayat,
        "agency_code": agency,
        "submitted": 1,
    }


def completed(governorate: str, wilayat: str, agency: str) -> float | None:
    place = {"governorate": governorate, "wilayat": wilayat, "agency": agency}
    return REGISTRY.get_sample_value(
        "sanad_transactions_finished_total", {**place, "outcome": "completed"}
    )


async def test_a_starting_worker_prepares_the_outcome_series_of_its_recent_rollups(
    mongo_url: str, database_name: str
) -> None:
    today = utcnow().date()
    recent, old = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=400)).isoformat()
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[database_name]
    await db[rollups.COLLECTION].insert_many(
        [
            daily(recent, "Y1", "Y1-A", "YA1"),
            daily(recent, "Y1", "Y1-A", "YA2"),
            daily(old, "Y1", "Y1-B", "YA1"),  # past OPEN_DAYS: nothing there may still finish
        ]
    )
    await db[rollups.YEARLY].insert_many(
        [
            {"_id": f"{recent[:4]}|C-Y1-A|Y1-A", "period": recent[:4], "wilayat_code": "Y1-A"},
            {"_id": f"{old[:4]}|C-Y1-B|Y1-B", "period": old[:4], "wilayat_code": "Y1-B"},
        ]
    )
    app = build_app(IngestSettings(**in_process_settings(mongo_url, database_name)))
    try:
        places = await app.store.recent_places((today - timedelta(days=OPEN_DAYS)).isoformat())
        assert places == {("Y1", "Y1-A", "YA1"), ("Y1", "Y1-A", "YA2")}

        assert completed("Y1", "Y1-A", "YA1") is None
        following = asyncio.create_task(app.follow_places())  # as the running worker does
        assert await app.indexes.ready()  # readiness waits for the indexes, not for the scan

        async def prepared() -> bool:
            return completed("Y1", "Y1-A", "YA2") is not None

        await eventually(prepared, within_s=10, every_s=0.02)
        assert [completed("Y1", "Y1-A", agency) for agency in ("YA1", "YA2")] == [0.0, 0.0]
        assert completed("Y1", "Y1-B", "YA1") is None
        app.stopping.set()
        await following
    finally:
        await app.close()
        await client.close()


async def test_a_running_worker_prepares_the_series_of_places_the_batch_worker_stored_since(
    mongo_url: str, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "PLACES_POLL_S", 0.05)
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    db = client[database_name]
    app = build_app(IngestSettings(**in_process_settings(mongo_url, database_name)))
    try:
        await app.indexes.ready()  # started: nothing stored yet
        looking = asyncio.create_task(app.follow_places())
        assert completed("Y2", "Y2-A", "YB1") is None
        today = utcnow().date().isoformat()  # a batch worker stores the place's first ones
        await db[rollups.COLLECTION].insert_one(daily(today, "Y2", "Y2-A", "YB1"))
        await db[rollups.YEARLY].insert_one(
            {"_id": f"{today[:4]}|C-Y2-A|Y2-A", "period": today[:4], "wilayat_code": "Y2-A"}
        )

        async def prepared() -> bool:
            return completed("Y2", "Y2-A", "YB1") is not None

        await eventually(prepared, within_s=10, every_s=0.02)
        assert completed("Y2", "Y2-A", "YB1") == 0.0
        assert ("Y2", "Y2-A", "YB1") in app.prepared
        app.stopping.set()
        async with asyncio.timeout(1):  # the look ends with the worker
            await looking
    finally:
        await app.close()
        await client.close()
