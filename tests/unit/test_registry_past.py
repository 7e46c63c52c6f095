"""What a centre's place and a service's terms were at a moment, from the registry's changes as
the watch streams replay them: the last change at or before it, the first before any."""

from datetime import UTC, datetime, timedelta

from services.intake.domain import CenterView, Past, ServiceView, place_of, terms_of

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def centre(wilayat: str, status: str = "ACTIVE") -> CenterView:
    return CenterView("C1", wilayat[:2], wilayat, status, None, frozenset(), frozenset())


def service(sla_hours: int, version: int) -> ServiceView:
    return ServiceView("ROP-VISA", "ROP", 5000, sla_hours, version, True)


def test_a_moment_before_the_first_record_gets_the_first_and_later_ones_the_change_in_force() -> (
    None
):
    places = Past(place_of)
    places.note("C1", T0, centre("DA-NIZ"))
    places.note("C1", T0 + timedelta(days=3), centre("MA-SEB"))
    today = centre("MA-SEB")
    assert places.as_of("C1", datetime(2024, 2, 29, tzinfo=UTC), today).wilayat_code == "DA-NIZ"
    assert places.as_of("C1", T0 + timedelta(days=2), today).wilayat_code == "DA-NIZ"
    assert places.as_of("C1", T0 + timedelta(days=3), today).wilayat_code == "MA-SEB"
    assert places.as_of("C2", T0, today) is today  # nothing recorded: as it is now


def test_a_change_of_another_field_or_a_replayed_one_records_nothing() -> None:
    places = Past(place_of)
    places.note("C1", T0, centre("DA-NIZ", "APPLIED"))
    places.note("C1", T0 + timedelta(days=1), centre("DA-NIZ", "ACTIVE"))  # licence only
    places.note("C1", T0 + timedelta(days=2), centre("DA-BAH"))
    places.note("C1", T0 + timedelta(days=2), centre("DA-BAH"))  # replayed
    assert places._changes["C1"] == [
        (T0, centre("DA-NIZ", "APPLIED")),
        (T0 + timedelta(days=2), centre("DA-BAH")),
    ]


def test_a_change_without_a_time_or_behind_the_last_takes_effect_from_the_last() -> None:
    terms = Past(terms_of)
    terms.note("ROP-VISA", None, service(48, 1))
    terms.note("ROP-VISA", T0, service(24, 2))
    terms.note("ROP-VISA", T0 - timedelta(hours=1), service(4, 3))  # a replica's clock behind
    assert terms.as_of("ROP-VISA", T0 - timedelta(days=1), service(4, 3)).sla_hours == 48
    assert terms.as_of("ROP-VISA", T0, service(4, 3)).version == 3
    terms.clear()
    assert terms.as_of("ROP-VISA", T0, service(4, 3)).version == 3
