"""MetricsService time ranges over gRPC: the rollup days a request reads, or why it is refused."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from services.metrics.periods import OPEN_END, OPEN_START
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
    queries,
)
from tests.unit.metrics_stub import serving

IN_2030 = datetime(2030, 6, 1, tzinfo=UTC)
Request = metrics_pb2.GetCenterStatsRequest | metrics_pb2.GetWilayatStatsRequest
EPOCH = "1970-01-01T00:00:00Z"
Served = tuple[metrics_pb2_grpc.MetricsServiceStub, FakeStore]


def at(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    store = FakeStore()
    servicer = MetricsServicer(
        MetricsQueries(store, FakeDirectory([facts("A", "DA-NIZ", 2)]), FakePlaces(), WEIGHTS, REFS)
    )
    async with serving(servicer) as stub:
        yield stub, store


async def answer(stub: metrics_pb2_grpc.MetricsServiceStub, request: Request) -> object:
    if isinstance(request, metrics_pb2.GetCenterStatsRequest):
        return await stub.GetCenterStats(request)
    return await stub.GetWilayatStats(request)


async def days_read(served: Served, request: Request) -> tuple[str, str]:
    """The day range the store was asked for when the request was answered OK."""
    stub, store = served
    await answer(stub, request)
    return store.calls[-1][2]


async def refusal(served: Served, request: Request) -> list[tuple[str, str]]:
    """The field violations of an INVALID_ARGUMENT answer; the store was never asked."""
    stub, store = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await answer(stub, request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert store.calls == []
    return field_violations(caught.value)


def both(**fields: Timestamp) -> list[Request]:
    """The same range in each RPC that takes one."""
    return [
        metrics_pb2.GetCenterStatsRequest(center_id="A", **fields),
        metrics_pb2.GetWilayatStatsRequest(wilayat_code="DA-NIZ", **fields),
    ]


@pytest.mark.parametrize("request_", both())
async def test_unset_ends_read_every_day(served: Served, request_: Request) -> None:
    assert await days_read(served, request_) == (OPEN_START, OPEN_END)


@pytest.mark.parametrize(
    "request_", both(start_time=at("0499-06-30T12:00:00Z"), end_time=at("0500-01-01T00:00:00Z"))
)
async def test_a_range_before_the_year_1000_reads_zero_padded_days(
    served: Served, request_: Request
) -> None:
    assert await days_read(served, request_) == ("0499-06-30", "0500-01-01")


@pytest.mark.parametrize("request_", both(end_time=at(EPOCH)))
async def test_an_end_at_the_epoch_is_an_end_not_an_open_range(
    served: Served, request_: Request
) -> None:
    assert await days_read(served, request_) == (OPEN_START, "1970-01-01")


@pytest.mark.parametrize(
    "request_", both(start_time=at(EPOCH), end_time=at("1970-01-02T00:00:00Z"))
)
async def test_a_start_at_the_epoch_is_a_start(served: Served, request_: Request) -> None:
    assert await days_read(served, request_) == ("1970-01-01", "1970-01-02")


@pytest.mark.parametrize(
    "request_",
    [
        *both(start_time=at("2024-03-05T00:00:00Z"), end_time=at("2024-03-05T00:00:00Z")),
        *both(start_time=at("2024-03-06T00:00:00Z"), end_time=at("2024-03-01T00:00:00Z")),
        *both(start_time=at("2024-03-05T00:00:00Z"), end_time=at(EPOCH)),
    ],
)
async def test_an_end_not_after_the_start_is_invalid_argument_on_end_time(
    served: Served, request_: Request
) -> None:
    assert await refusal(served, request_) == [("end_time", "must be after start_time")]


async def test_every_bad_field_of_a_range_request_is_named_at_once(served: Served) -> None:
    request = metrics_pb2.GetWilayatStatsRequest(
        start_time=Timestamp(seconds=-62_135_596_801),  # one second before year 1
        end_time=Timestamp(seconds=1, nanos=-1),
    )
    assert await refusal(served, request) == [
        ("wilayat_code", "is required"),
        ("start_time", "not a valid timestamp"),
        ("end_time", "not a valid timestamp"),
    ]


@pytest.mark.parametrize(
    "request_",
    both(start_time=Timestamp(seconds=1_709_640_000, nanos=100),
         end_time=Timestamp(seconds=1_709_640_000, nanos=900)),
)  # fmt: skip
async def test_a_range_shorter_than_a_microsecond_is_a_range(
    served: Served, request_: Request
) -> None:
    # Within one microsecond: the datetimes the range becomes are equal; the Timestamps are not.
    assert await days_read(served, request_) == ("2024-03-05", "2024-03-06")


async def test_an_unknown_wilayat_is_named_with_the_requests_other_bad_fields(
    served: Served,
) -> None:
    request = metrics_pb2.GetWilayatStatsRequest(
        wilayat_code="XX-ZZZ",
        start_time=at("2024-03-06T00:00:00Z"),
        end_time=at("2024-03-01T00:00:00Z"),
    )
    assert await refusal(served, request) == [
        ("end_time", "must be after start_time"),
        ("wilayat_code", "unknown wilayat 'XX-ZZZ'"),
    ]


@pytest.mark.parametrize(
    ("governorate", "named"),
    [("DA", {"year", "limit"}), ("XX", {"year", "limit", "governorate_code"})],
)
async def test_a_leaderboard_request_names_every_bad_field_at_once(
    served: Served, governorate: str, named: set[str]
) -> None:
    stub, store = served
    request = metrics_pb2.GetAwardLeaderboardRequest(
        governorate_code=governorate, year=1999, limit=-1
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAwardLeaderboard(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {field for field, _ in field_violations(caught.value)} == named
    assert store.calls == []


@pytest.mark.parametrize(("year", "refused"), [(2029, False), (2030, False), (2031, True)])
async def test_a_report_or_leaderboard_of_a_year_not_begun_is_refused_by_field(
    year: int, refused: bool
) -> None:
    """It would read nothing completed and a change of -100% on the year before. This year is
    the year of the clock that decides the year in progress (here 2030), not the machine's."""
    servicer = MetricsServicer(queries([], [facts("A", "DA-NIZ", 2)], now=IN_2030))
    async with serving(servicer) as stub:
        for call in (
            stub.GetGovernorateReport(
                metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=year)
            ),
            stub.GetAwardLeaderboard(
                metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=year)
            ),
        ):
            if not refused:
                await call
                continue
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_violations(caught.value) == [
                ("year", "must not be after this year (2030)")
            ]
    if refused:
        assert servicer.queries.store.calls == []  # type: ignore[attr-defined]


async def test_a_leaderboard_ranks_by_the_services_minimum_unless_the_request_names_one() -> None:
    rows = [
        made("2030-03-01", "A", "DA-NIZ", completed=5, completed_within_sla=5),
        made("2030-03-01", "B", "DA-NIZ", completed=300, completed_within_sla=100),
    ]
    centres = [facts("A", "DA-NIZ", 2), facts("B", "DA-NIZ", 2)]
    servicer = MetricsServicer(queries(rows, centres, now=IN_2030, min_completed=100))
    async with serving(servicer) as stub:

        async def ranks(**fields: int) -> tuple[int, list[tuple[str, int]]]:
            reply = await stub.GetAwardLeaderboard(
                metrics_pb2.GetAwardLeaderboardRequest(governorate_code="DA", year=2030, **fields)
            )
            return reply.min_completed, [(e.center_id, e.rank) for e in reply.entries]

        assert await ranks() == (100, [("B", 1), ("A", 0)])
        assert await ranks(min_completed=0) == (0, [("A", 1), ("B", 2)])
        assert await ranks(min_completed=5) == (5, [("A", 1), ("B", 2)])
        assert await ranks(min_completed=6) == (6, [("B", 1), ("A", 0)])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await ranks(min_completed=-1)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(caught.value) == [("min_completed", "must not be negative")]
