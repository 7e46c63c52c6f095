"""The change in completions compares like with like, and says so when there is nothing to
compare with."""

from datetime import UTC, datetime

import pytest

from sanad.v1 import metrics_pb2
from services.metrics.report import compared_span
from services.metrics.servicer import MetricsServicer
from tests.unit.metrics_fakes import facts, made, queries
from tests.unit.metrics_stub import serving

CENTRES = [facts("A", "DA-NIZ", 2)]
DOCS = [
    made("2025-01-15", "A", "DA-NIZ", completed=100),
    made("2025-03-05", "A", "DA-NIZ", completed=10),
    made("2025-03-06", "A", "DA-NIZ", completed=1_000),
    made("2025-09-01", "A", "DA-NIZ", completed=5_000),
    made("2026-01-20", "A", "DA-NIZ", completed=120),
    made("2026-03-05", "A", "DA-NIZ", completed=5),
]
MARCH_5_2026 = datetime(2026, 3, 5, 10, tzinfo=UTC)


async def test_the_year_in_progress_is_compared_with_the_same_span_of_the_year_before() -> None:
    report = await queries(DOCS, CENTRES, now=MARCH_5_2026).report("DA", 2026)
    assert report.current.transactions_completed == 125
    assert report.previous.transactions_completed == 6_110  # the previous year, whole
    assert report.previous_completed_compared == 110  # 1 January to 5 March 2025
    assert report.compared_until == datetime(2025, 3, 6, tzinfo=UTC)
    assert report.completed_change_percent == pytest.approx(13.64)


async def test_a_year_that_is_over_is_compared_with_the_whole_year_before() -> None:
    docs = [*DOCS, made("2024-06-01", "A", "DA-NIZ", completed=4_888)]
    report = await queries(docs, CENTRES, now=MARCH_5_2026).report("DA", 2025)
    assert report.previous_completed_compared == report.previous.transactions_completed == 4_888
    assert report.compared_until is None
    assert report.completed_change_percent == pytest.approx(25.0)


async def test_nothing_to_compare_with_is_no_change_figure_not_zero() -> None:
    report = await queries(DOCS, CENTRES, now=MARCH_5_2026).report("DA", 2025)
    assert report.previous.transactions_completed == 0
    assert report.completed_change_percent is None


async def test_the_reply_tells_an_unknown_change_from_no_change() -> None:
    docs = [*DOCS, made("2024-05-01", "A", "DA-NIZ", completed=6_110)]
    servicer = MetricsServicer(queries(docs, CENTRES, now=MARCH_5_2026))
    async with serving(servicer) as stub:

        async def report(year: int) -> metrics_pb2.GetGovernorateReportResponse:
            request = metrics_pb2.GetGovernorateReportRequest(governorate_code="DA", year=year)
            return await stub.GetGovernorateReport(request)

        unknown, flat, in_progress = await report(2024), await report(2025), await report(2026)
    assert (unknown.completed_change_undefined, unknown.completed_change_percent) == (True, 0.0)
    assert (flat.completed_change_undefined, flat.completed_change_percent) == (False, 0.0)
    assert not flat.HasField("compared_until")
    assert in_progress.compared_until.ToJsonString() == "2025-03-06T00:00:00Z"
    assert in_progress.previous_completed_compared == 110


@pytest.mark.parametrize(
    ("now", "span"),
    [
        (datetime(2026, 1, 1, 0, 30, tzinfo=UTC), ("2025-01-01", "2025-01-02")),
        (datetime(2028, 2, 29, 12, tzinfo=UTC), ("2027-01-01", "2027-03-01")),
        (datetime(2025, 3, 1, tzinfo=UTC), ("2024-01-01", "2024-03-02")),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), ("2025-01-01", "2026-01-01")),
    ],
)
def test_the_compared_span_runs_to_the_same_date_of_the_year_before(
    now: datetime, span: tuple[str, str]
) -> None:
    assert compared_span(now.year, now) == span
    assert compared_span(now.year - 1, now) is None
    assert compared_span(now.year + 1, now) is None
