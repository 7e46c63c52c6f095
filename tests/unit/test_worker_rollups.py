"""Rollup increments: daily per service, and the same counters per month and year per centre."""

from datetime import UTC, datetime

from sanad import rollups
from workers.ingest.rollups import RollupIncrements

DOC = {
    "center_id": "C1",
    "service_code": "S1",
    "governorate_code": "DA",
    "wilayat_code": "DA-NIZ",
    "agency_code": "ROP",
    "fee_baisa": 5000,
    "status": "COMPLETED",
    "sla_hours": 48,
    "sla_elapsed_seconds": 3600,
    "submit_time": datetime(2024, 12, 31, 22, 0, tzinfo=UTC),
    "finish_time": datetime(2025, 1, 1, 1, 0, tzinfo=UTC),
}


def test_a_transaction_finished_next_year_counts_in_each_grain_on_its_own_days() -> None:
    increments = RollupIncrements()
    increments.stored(DOC)
    daily = {key: inc for key, _, inc in increments.items()}
    assert daily["2024-12-31|C1|S1|DA-NIZ"][rollups.SUBMITTED] == 1
    assert daily["2025-01-01|C1|S1|DA-NIZ"][rollups.COMPLETED] == 1
    periods = increments.period_items()
    monthly = {key: (dims, inc) for key, dims, inc in periods[rollups.MONTHLY]}
    yearly = {key: (dims, inc) for key, dims, inc in periods[rollups.YEARLY]}
    assert monthly["2024-12|C1|DA-NIZ"][1] == {"submitted": 1, "recorded": 1, "fees_baisa": 5000}
    assert yearly["2025|C1|DA-NIZ"][1][rollups.COMPLETED] == 1
    assert yearly["2025|C1|DA-NIZ"][1]["completion_hist.le_3600"] == 1
    assert yearly["2025|C1|DA-NIZ"][0] == {
        "period": "2025",
        "center_id": "C1",
        "governorate_code": "DA",
        "wilayat_code": "DA-NIZ",
    }


def test_every_grain_sums_to_the_same_totals() -> None:
    increments = RollupIncrements()
    for day in range(1, 29):
        increments.stored({**DOC, "submit_time": datetime(2024, 2, day, tzinfo=UTC),
                           "finish_time": datetime(2024, 3, day, tzinfo=UTC)})  # fmt: skip

    def total(items: list[tuple[str, dict[str, object], dict[str, int]]], name: str) -> int:
        return sum(inc.get(name, 0) for _, _, inc in items)

    periods = increments.period_items()
    for name in (rollups.SUBMITTED, rollups.COMPLETED, rollups.FEES_BAISA):
        assert (
            total(increments.items(), name)
            == total(periods[rollups.MONTHLY], name)
            == total(periods[rollups.YEARLY], name)
        )
    assert len(periods[rollups.YEARLY]) == 1


def test_a_centre_that_moved_counts_each_place_in_documents_of_its_own() -> None:
    increments = RollupIncrements()
    moved = {**DOC, "governorate_code": "BA", "wilayat_code": "BA-SUR"}
    increments.stored({**DOC, "submit_time": datetime(2025, 1, 10, tzinfo=UTC)})
    increments.stored({**moved, "submit_time": datetime(2025, 7, 10, tzinfo=UTC),
                       "finish_time": datetime(2025, 7, 11, tzinfo=UTC)})  # fmt: skip

    yearly = increments.period_items()[rollups.YEARLY]
    places = {dims["governorate_code"]: inc[rollups.SUBMITTED] for _, dims, inc in yearly}
    assert places == {"DA": 1, "BA": 1}
