"""A numbered status change refused as illegal is refused again when it comes again, with the
reason and detail of its first refusal, never taken for a duplicate of itself."""

from datetime import UTC, datetime, timedelta

from sanad.amqp.verdicts import Dead
from sanad.domain.transactions import Status
from tests.unit.fakes import stored_transaction
from workers.ingest.changes import Applied, StatusChange, apply_change
from workers.storage.rollups import RollupIncrements

AT = datetime(2024, 5, 1, 9, tzinfo=UTC)


def change(sequence: int, status: Status, change_id: str = "") -> StatusChange:
    time = AT + timedelta(hours=sequence)
    return StatusChange("T1", change_id or f"c{sequence}", status, time, "ROP", "", sequence)


def test_a_refused_numbered_change_is_refused_again_with_its_first_reason() -> None:
    doc = stored_transaction("T1", AT)
    assert apply_change(doc, change(1, Status.COMPLETED), RollupIncrements()) is Applied.APPLIED

    first = apply_change(doc, change(2, Status.IN_PROGRESS), RollupIncrements())
    doc["status"] = "CANCELLED"  # whatever happens after, the refusal is the one it met
    again = apply_change(doc, change(2, Status.IN_PROGRESS), RollupIncrements())

    assert isinstance(first, Dead)
    assert again == first
    assert doc["sequence"] == 2


def test_a_refused_numbered_change_holds_back_nothing_after_it() -> None:
    doc = stored_transaction("T1", AT)
    apply_change(doc, change(1, Status.CANCELLED), RollupIncrements())
    apply_change(doc, change(2, Status.IN_PROGRESS), RollupIncrements())

    assert apply_change(doc, change(1, Status.CANCELLED), RollupIncrements()) is Applied.DUPLICATE
    assert isinstance(apply_change(doc, change(3, Status.COMPLETED), RollupIncrements()), Dead)
    assert [r["change_id"] for r in doc["refused_changes"]] == ["c2", "c3"]


def test_an_unnumbered_refused_change_leaves_the_document_as_it_was() -> None:
    doc = stored_transaction("T1", AT)
    apply_change(doc, change(0, Status.CANCELLED, "c1"), RollupIncrements())
    before = dict(doc)

    refused = apply_change(doc, change(0, Status.IN_PROGRESS, "c2"), RollupIncrements())

    assert isinstance(refused, Dead)
    assert doc == before
