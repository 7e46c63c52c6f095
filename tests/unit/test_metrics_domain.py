"""The report arithmetic: sums, histogram medians, and who counts as active in a year."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sanad import rollups
from sanad.domain.places import Place
from sanad.v1 import registry_pb2
from services.metrics.directory import facts_of
from services.metrics.domain import (
    CenterFacts,
    LicenceChange,
    Stats,
    active_in_year,
    histogram_quantile,
    placed_at_end_of,
    sum_rollups,
)
from services.metrics.placement import PlacedYear, members_of
from services.metrics.report import change_percent, year_figures
from tests.unit.metrics_fakes import facts


def at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def centre(cid: str, wilayat: str, staff: int, *history: tuple[datetime, str]) -> CenterFacts:
    changes = tuple(LicenceChange(time, status) for time, status in history)
    return CenterFacts(
        cid, f"مركز {cid}", f"Centre {cid}", wilayat, staff, changes, governorate_code="DA"
    )


def served(completed: int = 0, submitted: int = 0) -> Stats:
    return sum_rollups([{"completed": completed, "submitted": submitted}])


def test_sums_add_counters_and_histogram_buckets_of_every_rollup() -> None:
    stats = sum_rollups(
        [
            {"completed": 2, "completion_seconds_sum": 100, "completion_hist": {"le_900": 2}},
            {"completed": 1, "completion_seconds_sum": 50, "completion_hist": {"le_inf": 1}},
            {"ratings": 2, "rating_sum": 9},
        ]
    )
    assert stats.get("completed") == 3
    assert stats.mean_completion_seconds == pytest.approx(50.0)
    assert stats.mean_rating == pytest.approx(4.5)
    assert stats.histogram["le_900"] == 2
    assert stats.histogram["le_inf"] == 1


def test_empty_stats_have_zero_means() -> None:
    stats = sum_rollups([])
    assert (stats.mean_completion_seconds, stats.mean_rating) == (0.0, 0.0)
    assert stats.median_completion_seconds == 0.0


def test_median_interpolates_inside_its_bucket_like_prometheus() -> None:
    # 4 completions <= 15 min, 4 in (1 h, 2 h]: the median sits at the top of the first bucket.
    assert histogram_quantile(0.5, {"le_900": 4, "le_7200": 4}) == pytest.approx(900.0)
    # 10 in (1 h, 2 h]: the median is half-way through that bucket.
    assert histogram_quantile(0.5, {"le_7200": 10}) == pytest.approx(5400.0)


def test_median_beyond_the_last_bound_reads_as_the_last_bound() -> None:
    assert histogram_quantile(0.5, {"le_inf": 3}) == float(rollups.COMPLETION_BOUNDS_S[-1])


def test_a_centre_that_served_in_the_year_is_active_even_before_its_registry_licence() -> None:
    # Migrated history predates the registry record: activated in 2026, served in 2024.
    c = centre("A", "DA-NIZ", 2, (at(2026), "INITIALLY_APPROVED"), (at(2026, 2), "ACTIVE"))
    assert active_in_year(c, 2024, served(completed=5))
    assert not active_in_year(c, 2024, served())
    assert not active_in_year(c, 2024, None)


def test_licence_history_alone_makes_a_centre_active_in_a_year() -> None:
    c = centre("A", "DA-NIZ", 2, (at(2023, 3), "ACTIVE"), (at(2024, 6), "SUSPENDED"))
    assert active_in_year(c, 2023, None)
    assert active_in_year(c, 2024, None)
    assert not active_in_year(c, 2025, None)
    assert not active_in_year(c, 2022, None)


def test_a_licence_never_renewed_stops_being_active_at_its_expiry() -> None:
    c = replace(centre("A", "DA-NIZ", 2, (at(2024, 3), "ACTIVE")), licence_expires_at=at(2025, 3))
    assert active_in_year(c, 2024, None)
    assert active_in_year(c, 2025, None)  # active until March
    assert not active_in_year(c, 2026, None)
    assert active_in_year(c, 2026, served(completed=1))  # it worked: active by its work
    # Renewed: the expiry moved on, and so does the stretch.
    renewed = replace(c, licence_expires_at=at(2027, 3))
    assert active_in_year(renewed, 2026, None)


def test_a_licence_cancelled_before_the_year_is_never_active() -> None:
    c = centre("A", "DA-NIZ", 2, (at(2022), "ACTIVE"), (at(2023, 6), "CANCELLED"))
    assert not active_in_year(c, 2024, served(completed=1))
    assert active_in_year(c, 2023, None)


def test_year_figures_count_active_centres_wilayats_staff_and_totals() -> None:
    centres = [
        centre("A", "DA-NIZ", 3),
        centre("B", "DA-NIZ", 2),
        centre("C", "DA-BAH", 4),
        centre("D", "DA-IZK", 5),  # served nothing in the year
    ]
    rows = [
        PlacedYear(
            "A", Place("DA", "DA-NIZ"), sum_rollups([{"completed": 10, "fees_baisa": 5000}])
        ),
        PlacedYear("B", Place("DA", "DA-NIZ"), sum_rollups([{"submitted": 1}])),
        PlacedYear("C", Place("DA", "DA-BAH"), sum_rollups([{"completed": 7, "fees_baisa": 1000}])),
    ]
    members, totals = members_of("DA", 2024, rows, {c.center_id: c for c in centres})
    figures = year_figures(2024, members, totals)
    assert figures.active_centers == 3
    assert figures.wilayats_with_centers == 2
    assert figures.transactions_completed == 17
    assert figures.omani_staff == 9
    assert figures.fees_baisa == 6000


def test_change_is_in_percent_and_none_without_a_previous_figure() -> None:
    assert change_percent(110, 100) == 10.0
    assert change_percent(5, 0) is None
    assert change_percent(0, 0) is None


def test_the_registry_centre_becomes_facts_with_its_licence_expiry() -> None:
    center = registry_pb2.Center(id="A", wilayat_code="DA-NIZ", omani_staff=2)
    center.licence.expires_at.FromDatetime(at(2025, 3))
    event = center.licence.history.add(to_status=registry_pb2.LICENCE_STATUS_ACTIVE)
    event.time.FromDatetime(at(2024, 3))
    facts = facts_of(center)
    assert facts.licence_expires_at == at(2025, 3)
    assert facts.licence_history == (LicenceChange(at(2024, 3), "ACTIVE"),)
    assert not active_in_year(facts, 2026, None)
    # Before activation the licence has no expiry, and nothing is cut short.
    assert facts_of(registry_pb2.Center(id="B")).licence_expires_at is None


def test_a_centre_moved_at_the_first_moment_of_a_year_ends_the_year_before_where_it_was() -> None:
    """The year's end is exclusive: a move at 1 January 00:00 UTC places the new year, not the
    old one."""
    new_year = datetime(2025, 1, 1, tzinfo=UTC)
    moved = facts("A", "MU-X", 2, placed=[(datetime(2023, 5, 1, tzinfo=UTC), "DA-NIZ")],
                  moved_at=new_year)  # fmt: skip
    assert placed_at_end_of(moved, 2024) == Place("DA", "DA-NIZ")
    assert placed_at_end_of(moved, 2025) == Place("MU", "MU-X")
    assert placed_at_end_of(moved, 2022) == Place("DA", "DA-NIZ")  # registered later: its first
