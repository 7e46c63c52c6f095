"""MetricsStore.year_by_place on a real MongoDB-wire server: the rows it sums itself from the
yearly documents are those a $group by centre and place gives on the server."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from sanad import rollups
from services.metrics.domain import BUCKETS
from services.metrics.store import PLACE_KEYS, MetricsStore

pytestmark = pytest.mark.integration

AWARD = (rollups.SUBMITTED, rollups.COMPLETED, rollups.RATINGS, rollups.RATING_SUM)


def yearly(_id: str, center: str, wilayat: str, period: str = "2024", **values: Any) -> dict:
    return {
        "_id": _id,
        "period": period,
        "center_id": center,
        "governorate_code": wilayat.split("-", maxsplit=1)[0],
        "wilayat_code": wilayat,
        **values,
    }


DOCUMENTS = [
    # One centre's year in one place twice: an earlier version's id and the current one.
    yearly("2024|A", "A", "DA-NIZ", submitted=3, completed=2, completion_hist={"le_900": 2}),
    yearly(
        "2024|A|DA-NIZ", "A", "DA-NIZ", submitted=5, completed=4, ratings=1, rating_sum=5,
        completion_hist={"le_900": 1, "le_inf": 3},
    ),
    # The same centre after a move, in another wilayat of the governorate: a row of its own.
    yearly("2024|A|DA-BAH", "A", "DA-BAH", submitted=7, fees_baisa=1_000),
    # What $sum leaves out: a value that is not a number, a null, a boolean.
    yearly(
        "2024|B|DA-IZK", "B", "DA-IZK", submitted="many", completed=None, ratings=True,
        rating_sum=2**40, completion_hist="none",
    ),
    # Neither the year nor the governorate asked for.
    yearly("2023|A|DA-NIZ", "A", "DA-NIZ", period="2023", submitted=100),
    yearly("2024|C|MA-MUT", "C", "MA-MUT", submitted=9),
]  # fmt: skip


@pytest.fixture
async def db(mongo_url: str, database_name: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    database = client[database_name]
    await database[rollups.YEARLY].insert_many([dict(doc) for doc in DOCUMENTS])
    yield database
    await client.close()


async def grouped_by_the_server(
    db: AsyncDatabase[Any], match: dict[str, Any], counters: tuple[str, ...], histogram: bool
) -> list[dict[str, Any]]:
    """What a $group by centre and place answers, in year_by_place's row shape."""
    sums: dict[str, Any] = {name: {"$sum": f"${name}"} for name in counters}
    if histogram:
        sums |= {f"h_{b}": {"$sum": f"${rollups.HISTOGRAM}.{b}"} for b in BUCKETS}
    group = {"_id": {name: f"${name}" for name in PLACE_KEYS}, **sums}
    rows = []
    async for found in await db[rollups.YEARLY].aggregate([{"$match": match}, {"$group": group}]):
        row = {"_id": found["_id"], **dict.fromkeys(rollups.COUNTERS, 0), **found["_id"]}
        row |= {name: found[name] for name in counters}
        row[rollups.HISTOGRAM] = {b: found.get(f"h_{b}", 0) for b in BUCKETS}
        rows.append(row)
    return rows


def by_place(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(row[name] for name in PLACE_KEYS): row for row in rows}


@pytest.mark.parametrize(
    ("counters", "histogram"), [(rollups.COUNTERS, True), (AWARD, True), (AWARD, False)]
)
async def test_a_governorates_year_sums_as_the_servers_group_does(
    db: AsyncDatabase[Any], counters: tuple[str, ...], histogram: bool
) -> None:
    rows = await MetricsStore(db).year_by_place(
        2024, governorate_code="DA", counters=counters, histogram=histogram
    )
    expected = await grouped_by_the_server(
        db, {"period": "2024", "governorate_code": "DA"}, counters, histogram
    )
    assert by_place(rows) == by_place(expected)
    assert len(rows) == len(expected) == 3


async def test_the_rows_add_an_earlier_versions_document_and_leave_out_what_is_no_number(
    db: AsyncDatabase[Any],
) -> None:
    rows = by_place(await MetricsStore(db).year_by_place(2024, governorate_code="DA"))
    a_nizwa = rows[("A", "DA", "DA-NIZ")]
    assert (a_nizwa["submitted"], a_nizwa["completed"], a_nizwa["ratings"]) == (8, 6, 1)
    assert a_nizwa[rollups.HISTOGRAM]["le_900"] == 3
    assert a_nizwa[rollups.HISTOGRAM]["le_inf"] == 3
    b = rows[("B", "DA", "DA-IZK")]
    assert (b["submitted"], b["completed"], b["ratings"], b["rating_sum"]) == (0, 0, 0, 2**40)
    assert sum(b[rollups.HISTOGRAM].values()) == 0


async def test_named_centres_are_read_wherever_they_worked(db: AsyncDatabase[Any]) -> None:
    rows = await MetricsStore(db).year_by_place(2024, center_ids=["A", "C"], counters=AWARD)
    expected = await grouped_by_the_server(
        db, {"period": "2024", "center_id": {"$in": ["A", "C"]}}, AWARD, True
    )
    assert by_place(rows) == by_place(expected)
    assert set(by_place(rows)) == {
        ("A", "DA", "DA-NIZ"),
        ("A", "DA", "DA-BAH"),
        ("C", "MA", "MA-MUT"),
    }
