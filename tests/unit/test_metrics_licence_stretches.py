"""A licence's ACTIVE stretch ends at the expiry its transition recorded: a centre whose licence
lapsed and was renewed late is not active in between; transitions recorded without an expiry
count until the next one, as before."""

from datetime import UTC, datetime, timedelta

from services.metrics.directory import facts_of
from services.metrics.domain import CenterFacts, LicenceChange, active_in_year, sum_rollups
from services.registry.convert import center_to_proto
from services.registry.domain import Center, Licence, LicenceAction, transition


def at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def centre(*history: LicenceChange, expires_at: datetime | None = None) -> CenterFacts:
    return CenterFacts(
        "A",
        "مركز",
        "Centre",
        "DA-NIZ",
        2,
        history,
        licence_expires_at=expires_at,
        governorate_code="DA",
    )


# Activated March 2022 for a year; lapsed March 2023; renewed late, June 2025, for a year.
ACTIVATED = LicenceChange(at(2022, 3), "ACTIVE", expires_at=at(2023, 3))
RENEWED = LicenceChange(at(2025, 6), "ACTIVE", expires_at=at(2026, 6))


def test_a_licence_that_lapsed_before_a_late_renewal_is_not_active_in_the_gap() -> None:
    c = centre(ACTIVATED, RENEWED, expires_at=at(2026, 6))
    assert active_in_year(c, 2022, None)
    assert active_in_year(c, 2023, None)  # until March
    assert not active_in_year(c, 2024, None)  # lapsed all year
    assert active_in_year(c, 2025, None)  # from June
    assert not active_in_year(c, 2027, None)


def test_a_centre_that_worked_in_the_gap_is_still_active_by_its_work() -> None:
    c = centre(ACTIVATED, RENEWED, expires_at=at(2026, 6))
    assert active_in_year(c, 2024, sum_rollups([{"completed": 1}]))


def test_a_stretch_ends_at_the_next_transition_when_that_comes_before_its_expiry() -> None:
    suspended = LicenceChange(at(2022, 6), "SUSPENDED", expires_at=at(2023, 3))
    c = centre(ACTIVATED, suspended, expires_at=at(2023, 3))
    assert active_in_year(c, 2022, None)
    assert not active_in_year(c, 2023, None)  # suspended before its expiry, never reinstated


def test_a_licence_reinstated_after_its_expiry_passed_is_not_active_from_the_reinstatement() -> (
    None
):
    """Suspended in November 2022, expired in March 2023 while suspended, reinstated in June
    2023: the reinstatement keeps the passed expiry, so its stretch is empty."""
    suspended = LicenceChange(at(2022, 11), "SUSPENDED", expires_at=at(2023, 3))
    reinstated = LicenceChange(at(2023, 6), "ACTIVE", expires_at=at(2023, 3))
    c = centre(ACTIVATED, suspended, reinstated, expires_at=at(2023, 3))
    assert active_in_year(c, 2022, None)
    assert not active_in_year(c, 2023, None)


def test_transitions_recorded_without_their_expiry_count_until_the_renewal_as_before() -> None:
    old = (LicenceChange(at(2022, 3), "ACTIVE"), LicenceChange(at(2025, 6), "ACTIVE"))
    c = centre(*old, expires_at=at(2026, 6))
    assert active_in_year(c, 2024, None)  # the history cannot say when it lapsed
    assert not active_in_year(c, 2027, None)  # the last stretch ends at the licence's expiry
    assert not active_in_year(centre(), 2024, None)  # no licence history: never active


def test_the_registry_history_of_a_late_renewal_reaches_metrics_with_the_gap() -> None:
    licence = Licence("LIC-1")
    for action, when in (
        (LicenceAction.APPROVE, at(2022, 2)),
        (LicenceAction.ACTIVATE, at(2022, 3)),
        (LicenceAction.RENEW, at(2025, 6)),
    ):
        licence = transition(licence, action, "ministry", "because", when)
    center = Center("A", "مركز", "Centre", "مؤسسة", "DA", "DA-NIZ", 2, 3, licence)
    facts = facts_of(center_to_proto(center))
    assert facts.licence_history[1].expires_at == at(2022, 3) + timedelta(days=365)
    assert [active_in_year(facts, year, None) for year in range(2022, 2027)] == [
        True,
        True,
        False,
        True,
        True,
    ]
