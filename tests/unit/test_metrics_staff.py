"""A centre's Omani staff counts at most MAX_STAFF in the figures: a centre stored before the
registry bounded staff still leaves the governorate report answering."""

from dataclasses import replace

import pytest

from sanad.domain.staff import MAX_STAFF
from sanad.v1 import registry_pb2
from services.metrics.convert import figures_to_proto
from services.metrics.directory import counted_staff, facts_of
from tests.unit.metrics_fakes import facts, made, queries


def registry_centre(center_id: str, omani_staff: int) -> registry_pb2.Center:
    return registry_pb2.Center(
        id=center_id,
        governorate_code="DA",
        wilayat_code="DA-NIZ",
        omani_staff=omani_staff,
        total_staff=2_147_483_647,
    )


def test_a_centre_within_the_maximum_counts_its_registry_figure() -> None:
    assert facts_of(registry_centre("A", MAX_STAFF)).omani_staff == MAX_STAFF


def test_a_centre_stored_above_the_maximum_counts_at_it_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert facts_of(registry_centre("A", 2_000_000_000)).omani_staff == MAX_STAFF
    assert "centre A has 2000000000 Omani staff" in caplog.text


async def test_two_centres_stored_above_the_maximum_leave_the_report_answering() -> None:
    # The tester's case: 2,000,000,000 each summed past YearFigures' int32 (INTERNAL).
    staff = counted_staff(registry_centre("A", 2_000_000_000))
    counted = [replace(facts(key, "DA-NIZ", 0), omani_staff=staff) for key in ("A", "B")]
    docs = [made("2025-03-01", key, "DA-NIZ", completed=1) for key in ("A", "B")]
    report = await queries(docs, counted).report("DA", 2025)
    assert figures_to_proto(report.current).omani_staff == 2 * MAX_STAFF
