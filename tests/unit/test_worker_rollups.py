"""Rollup increments: daily per service, and the same counters per month and year per centre."""

from datetime import UTC, datetime, timedelta

import bson
from bson.codec_options import CodecOptions

from sanad import rollups
from sanad.domain.clock import to_millisecond
from sanad.domain.transactions import Status
from sanad.records import finish, proto_from_document
from sanad.telemetry.metrics import RECORDED_LAG_SECONDS, TRANSACTIONS_SUBMITTED
from workers.storage.rollups import RollupIncrements

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


def _sample(metric: object, name: str, **labels: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_migrated_history_counts_in_the_rollups_but_not_in_the_live_metrics() -> None:
    increments = RollupIncrements()
    increments.stored({**DOC, "migrated": True, "rating": 5, "rating_time": DOC["finish_time"]})

    assert increments.recorded == []
    assert increments.outcomes == []
    assert increments.ratings == []
    daily = {key: inc for key, _, inc in increments.items()}
    assert daily["2024-12-31|C1|S1|DA-NIZ"][rollups.SUBMITTED] == 1
    assert daily["2025-01-01|C1|S1|DA-NIZ"][rollups.COMPLETED] == 1


def test_only_a_writer_that_accepted_the_submissions_counts_them_as_submitted() -> None:
    live = {**DOC, "status": "RECORDED", "wilayat_code": "DA-BHL", "fee_baisa": 700}
    submitted = (TRANSACTIONS_SUBMITTED, "sanad_transactions_submitted_total")
    labels = {"wilayat": "DA-BHL"}
    before = _sample(*submitted, **labels)
    lag_before = _sample(RECORDED_LAG_SECONDS, "sanad_transaction_recorded_lag_seconds_count")

    stored_from_intake = RollupIncrements()
    stored_from_intake.stored(live)
    stored_from_intake.observe()
    assert _sample(*submitted, **labels) == before  # intake counted it when it was confirmed
    accepted_by_batch = RollupIncrements()
    accepted_by_batch.stored(live)
    accepted_by_batch.observe(accepted_here=True)

    assert _sample(*submitted, **labels) == before + 1
    assert _sample(RECORDED_LAG_SECONDS, "sanad_transaction_recorded_lag_seconds_count") == (
        lag_before + 2
    )


def test_days_before_the_year_1000_are_written_as_the_reports_read_them() -> None:
    increments = RollupIncrements()
    increments.stored({**DOC, "migrated": True, "submit_time": datetime(500, 1, 2, tzinfo=UTC),
                       "finish_time": datetime(500, 1, 3, tzinfo=UTC)})  # fmt: skip

    assert sorted(key for key, _, _ in increments.items()) == [
        "0500-01-02|C1|S1|DA-NIZ",
        "0500-01-03|C1|S1|DA-NIZ",
    ]
    periods = increments.period_items()
    assert [key for key, _, _ in periods[rollups.MONTHLY]] == ["0500-01|C1|DA-NIZ"]
    assert [key for key, _, _ in periods[rollups.YEARLY]] == ["0500|C1|DA-NIZ"]


def test_a_completion_half_a_second_past_its_sla_is_not_within_it() -> None:
    # Through the stored document as a worker finishes it (sanad.records.finish).
    submitted = datetime(2026, 3, 10, tzinfo=UTC)
    doc = {**DOC, "submit_time": submitted, "status": "SUBMITTED"}
    doc["history"] = [{"status": "SUBMITTED", "time": submitted}]
    finished = submitted + timedelta(hours=48, microseconds=500_000)
    doc["history"].append({"status": "COMPLETED", "time": finished})
    doc["status"] = "COMPLETED"
    finish(doc, Status.COMPLETED, finished)
    increments = RollupIncrements()
    increments.finished(doc)
    [(_, _, counted)] = increments.items()
    assert counted[rollups.COMPLETED] == 1
    assert counted[rollups.COMPLETED_WITHIN_SLA] == 0
    assert counted[rollups.COMPLETION_SECONDS_SUM] == 48 * 3600 + 1


def test_a_finished_clock_is_the_one_the_stored_times_give() -> None:
    # The ingest worker finishes a document read back from MongoDB (milliseconds) with a change
    # that carries microseconds: 48 h and 0.8 ms against the 48 h its stored times give.
    submitted = datetime(2026, 3, 10, 0, 0, 0, 100, tzinfo=UTC)
    finished = submitted + timedelta(hours=48, microseconds=800)
    doc = {**DOC, "_id": "T1", "channel": "COUNTER", "beneficiary_masked": "****5678"}
    doc["history"] = [{"status": "SUBMITTED", "time": to_millisecond(submitted)}]
    doc["submit_time"] = to_millisecond(submitted)
    doc["history"].append({"status": "COMPLETED", "time": finished})
    finish(doc, Status.COMPLETED, finished)
    increments = RollupIncrements()
    increments.finished(doc)
    [(_, _, counted)] = increments.items()
    assert doc["sla_elapsed_seconds"] == 48 * 3600
    assert counted[rollups.COMPLETED_WITHIN_SLA] == 1
    stored = bson.decode(bson.encode(doc), CodecOptions(tz_aware=True))
    shown = proto_from_document(stored, finished + timedelta(days=1))
    assert shown.sla_elapsed_seconds == doc["sla_elapsed_seconds"]
