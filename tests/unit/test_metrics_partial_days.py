"""A period counts every UTC day it touches whole: "today so far" is today, not nothing."""

from collections.abc import AsyncIterator

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics.queries import MetricsQueries
from services.metrics.servicer import MetricsServicer
from tests.unit.metrics_fakes import (
    REFS,
    WEIGHTS,
    FakeDirectory,
    FakePlaces,
    FakeStore,
    facts,
    made,
)
from tests.unit.metrics_stub import serving

Served = tuple[metrics_pb2_grpc.MetricsServiceStub, FakeStore]


def at(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    # Three transactions submitted on 5 March 2024, one on the 4th and one on the 6th.
    store = FakeStore(
        [
            made("2024-03-04", "A", "DA-NIZ", submitted=1),
            made("2024-03-05", "A", "DA-NIZ", submitted=3),
            made("2024-03-06", "A", "DA-NIZ", submitted=5),
        ]
    )
    queries = MetricsQueries(
        store, FakeDirectory([facts("A", "DA-NIZ", 2)]), FakePlaces(), WEIGHTS, REFS
    )
    async with serving(MetricsServicer(queries)) as stub:
        yield stub, store


async def submitted(served: Served, start: str, end: str) -> tuple[int, int]:
    """(the centre's, the wilayat's) submitted count over [start, end)."""
    stub, _ = served
    window = {"start_time": at(start), "end_time": at(end)}
    centre = await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="A", **window))
    wilayat = await stub.GetWilayatStats(
        metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-NIZ", **window)
    )
    return centre.stats.submitted, wilayat.stats.submitted


async def test_today_so_far_counts_today(served: Served) -> None:
    assert await submitted(served, "2024-03-05T00:00:00Z", "2024-03-05T15:00:00Z") == (3, 3)


async def test_a_day_partly_inside_the_period_counts_whole_at_either_end(served: Served) -> None:
    assert await submitted(served, "2024-03-04T22:00:00Z", "2024-03-05T01:00:00Z") == (4, 4)
    assert await submitted(served, "2024-03-05T10:00:00Z", "2024-03-05T11:00:00Z") == (3, 3)


async def test_an_end_at_midnight_leaves_the_day_it_begins_out(served: Served) -> None:
    assert await submitted(served, "2024-03-05T00:00:00Z", "2024-03-06T00:00:00Z") == (3, 3)
    assert await submitted(served, "2024-03-04T00:00:00Z", "2024-03-06T00:00:00Z") == (4, 4)


async def test_an_end_a_nanosecond_after_midnight_counts_that_day(served: Served) -> None:
    assert await submitted(served, "2024-03-05T00:00:00Z", "2024-03-06T00:00:00.000000001Z") == (
        8,
        8,
    )


async def test_the_store_is_asked_for_every_day_the_period_touches(served: Served) -> None:
    stub, store = served
    request = metrics_pb2.GetCenterStatsRequest(
        center_id="A", start_time=at("2024-02-29T23:59:59Z"), end_time=at("2024-12-31T00:00:01Z")
    )
    await stub.GetCenterStats(request)
    assert store.calls[-1][2] == ("2024-02-29", "2025-01-01")


async def test_an_end_on_the_last_day_a_timestamp_holds_is_not_an_error(served: Served) -> None:
    stub, store = served
    request = metrics_pb2.GetCenterStatsRequest(
        center_id="A",
        start_time=at("9999-12-31T00:00:00Z"),
        end_time=at("9999-12-31T23:59:59.999999999Z"),
    )
    await stub.GetCenterStats(request)
    assert store.calls[-1][2] == ("9999-12-31", "9999-01-01")  # nothing is counted after 9998
