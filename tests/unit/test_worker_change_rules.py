"""Status changes and ratings applied to a stored document: in order, once, refused when illegal."""

from datetime import UTC, datetime, timedelta

from sanad.amqp.verdicts import Dead, Retry
from sanad.domain.transactions import Status
from tests.unit.fakes import stored_transaction
from workers.ingest.changes import Applied, Rating, StatusChange, apply_change
from workers.storage.rollups import RollupIncrements

SUBMITTED_AT = datetime(2024, 5, 1, 9, tzinfo=UTC)


def stored() -> dict:
    return stored_transaction("T1", SUBMITTED_AT)


def change(change_id: str, status: Status, hours: float) -> StatusChange:
    return StatusChange("T1", change_id, status, SUBMITTED_AT + timedelta(hours=hours), "ROP", "")


def test_a_completion_counts_once_on_its_day_with_paused_time_excluded() -> None:
    doc, rollups = stored(), RollupIncrements()
    for item in (
        change("c1", Status.IN_PROGRESS, 1),
        change("c2", Status.AWAITING_DOCUMENTS, 2),
        change("c3", Status.IN_PROGRESS, 26),
        change("c4", Status.COMPLETED, 27),
    ):
        assert apply_change(doc, item, rollups) is Applied.APPLIED
    assert apply_change(doc, change("c4", Status.COMPLETED, 27), rollups) is Applied.DUPLICATE
    assert (doc["paused_seconds"], doc["sla_elapsed_seconds"]) == (24 * 3600, 3 * 3600)
    [(key, _, inc)] = rollups.items()
    assert key == "2024-05-02|C1|S|DA-NIZ"
    assert inc == {
        "completed": 1,
        "completion_seconds_sum": 3 * 3600,
        "completion_hist.le_14400": 1,
        "completed_within_sla": 1,
    }


def test_an_illegal_change_is_refused_with_its_reason() -> None:
    doc = stored()
    apply_change(doc, change("c1", Status.CANCELLED, 1), RollupIncrements())
    refused = apply_change(doc, change("c2", Status.IN_PROGRESS, 2), RollupIncrements())
    assert isinstance(refused, Dead)
    assert refused.reason == "illegal-status-change"
    assert doc["fee_refund_due"] is True


def test_a_rejection_counts_the_refund_due() -> None:
    doc, rollups = stored(), RollupIncrements()
    apply_change(doc, change("c1", Status.REJECTED, 50), rollups)
    [(_, _, inc)] = rollups.items()
    assert inc == {"rejected": 1, "refunds_due_baisa": 5000}


def test_a_rating_needs_completion_and_is_given_once() -> None:
    doc, rollups = stored(), RollupIncrements()
    rating = Rating("T1", "rating:5:1", 5, SUBMITTED_AT + timedelta(days=3), "app")
    # Before its completion is stored, a rating waits for it (intake takes a rating once it
    # accepted the completion, which may be stored after the rating arrives).
    early = apply_change(doc, rating, rollups)
    assert isinstance(early, Retry)
    assert early.reason == "not-completed"
    apply_change(doc, change("c1", Status.COMPLETED, 1), rollups)
    assert apply_change(doc, rating, rollups) is Applied.APPLIED
    assert apply_change(doc, rating, rollups) is Applied.DUPLICATE
    again = apply_change(doc, Rating("T1", "rating:1:2", 1, rating.time, "app"), rollups)
    assert isinstance(again, Dead)
    assert again.reason == "already-rated"
    by_day = {key: inc for key, _, inc in rollups.items()}
    assert by_day["2024-05-04|C1|S|DA-NIZ"] == {"ratings": 1, "rating_sum": 5}


def test_a_rating_of_a_transaction_finished_otherwise_is_refused() -> None:
    doc, rollups = stored(), RollupIncrements()
    apply_change(doc, change("c1", Status.CANCELLED, 1), rollups)
    rating = Rating("T1", "rating:5:1", 5, SUBMITTED_AT + timedelta(days=3), "app")
    refused = apply_change(doc, rating, rollups)
    assert isinstance(refused, Dead)
    assert refused.reason == "not-completed"


def numbered(change_id: str, status: Status, hours: float, sequence: int) -> StatusChange:
    at = SUBMITTED_AT + timedelta(hours=hours)
    return StatusChange("T1", change_id, status, at, "ROP", "", sequence)


def test_numbered_changes_apply_in_sequence_whatever_order_they_arrive_in() -> None:
    doc, rollups = stored(), RollupIncrements()
    first = numbered("c1", Status.AWAITING_DOCUMENTS, 1, 1)
    second = numbered("c2", Status.IN_PROGRESS, 2, 2)
    waiting = apply_change(doc, second, rollups)
    assert isinstance(waiting, Retry)
    assert waiting.reason == "change-out-of-order"
    assert (doc["status"], doc.get("sequence", 0)) == ("RECORDED", 0)
    assert apply_change(doc, first, rollups) is Applied.APPLIED
    assert apply_change(doc, second, rollups) is Applied.APPLIED
    assert apply_change(doc, first, rollups) is Applied.DUPLICATE
    assert doc["status"] == "IN_PROGRESS"
    assert [s["status"] for s in doc["history"]][-2:] == ["AWAITING_DOCUMENTS", "IN_PROGRESS"]


def test_a_refused_numbered_change_takes_its_place_so_the_next_is_not_held_back() -> None:
    doc = stored()
    apply_change(doc, numbered("c1", Status.CANCELLED, 1, 1), RollupIncrements())
    refused = apply_change(doc, numbered("c2", Status.IN_PROGRESS, 2, 2), RollupIncrements())
    assert isinstance(refused, Dead)
    assert refused.reason == "illegal-status-change"
    assert doc["sequence"] == 2


def test_an_unnumbered_change_older_than_the_last_step_is_superseded() -> None:
    doc, rollups = stored(), RollupIncrements()
    assert apply_change(doc, change("b", Status.IN_PROGRESS, 10), rollups) is Applied.APPLIED
    late = apply_change(doc, change("a", Status.AWAITING_DOCUMENTS, 9), rollups)
    assert late is Applied.SUPERSEDED
    assert doc["status"] == "IN_PROGRESS"
    assert [s["status"] for s in doc["history"]][-1] == "IN_PROGRESS"
    assert "paused_seconds" not in doc or doc["paused_seconds"] == 0
