"""What a centre's place or a service's terms were at a moment, from the registry's changes as
the watch streams replay them: the last change at or before it, the first before any; the same
rules for metrics' placements (an exclusive year end) and the batch worker's filing."""

from datetime import UTC, datetime, timedelta

from sanad.domain.places import Place
from sanad.domain.submissions import CenterView, ServiceView, place_of, terms_of
from sanad.registry_past import EARLIEST, Dated, followed_by, in_force

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def centre(wilayat: str, status: str = "ACTIVE") -> CenterView:
    return CenterView("C1", wilayat[:2], wilayat, status, None, frozenset(), frozenset())


def service(sla_hours: int, version: int) -> ServiceView:
    return ServiceView("ROP-VISA", "ROP", 5000, sla_hours, version, True)


def test_a_moment_before_the_first_change_gets_the_first_and_later_ones_the_change_in_force() -> (
    None
):
    places = followed_by((), T0, centre("DA-NIZ"), key=place_of)
    places = followed_by(places, T0 + timedelta(days=3), centre("MA-SEB"), key=place_of)

    def wilayat(moment: datetime) -> str:
        found = in_force(places, moment)
        assert found is not None
        return found.wilayat_code

    assert wilayat(datetime(2024, 2, 29, tzinfo=UTC)) == "DA-NIZ"  # long before the first
    assert wilayat(T0 + timedelta(days=2)) == "DA-NIZ"
    assert wilayat(T0 + timedelta(days=3)) == "MA-SEB"
    assert in_force((), T0) is None


def test_just_before_an_exclusive_end_a_change_at_the_end_is_not_yet_in_force() -> None:
    placements = followed_by((), T0, Place("DA", "DA-NIZ"))
    placements = followed_by(placements, T0 + timedelta(days=1), Place("MU", "MU-X"))
    end = T0 + timedelta(days=1)
    assert in_force(placements, end, before=True) == Place("DA", "DA-NIZ")
    assert in_force(placements, end) == Place("MU", "MU-X")
    assert in_force(placements, T0 - timedelta(days=1), before=True) == Place("DA", "DA-NIZ")


def test_a_change_of_another_field_or_a_replayed_one_records_nothing() -> None:
    places = followed_by((), T0, centre("DA-NIZ", "APPLIED"), key=place_of)
    places = followed_by(places, T0 + timedelta(days=1), centre("DA-NIZ"), key=place_of)
    places = followed_by(places, T0 + timedelta(days=2), centre("DA-BAH"), key=place_of)
    assert followed_by(places, T0 + timedelta(days=2), centre("DA-BAH"), key=place_of) == places
    assert places == (
        Dated(T0, centre("DA-NIZ", "APPLIED")),
        Dated(T0 + timedelta(days=2), centre("DA-BAH")),
    )


def test_a_change_without_a_time_or_behind_the_last_takes_effect_from_the_last() -> None:
    terms = followed_by((), None, service(48, 1), key=terms_of)
    assert terms == (Dated(EARLIEST, service(48, 1)),)
    terms = followed_by(terms, T0, service(24, 2), key=terms_of)
    terms = followed_by(terms, T0 - timedelta(hours=1), service(4, 3), key=terms_of)  # clock behind
    assert [entry.since for entry in terms] == [EARLIEST, T0, T0]
    assert in_force(terms, T0 - timedelta(days=1)) == service(48, 1)
    assert in_force(terms, T0) == service(4, 3)
