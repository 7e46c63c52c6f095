"""ListCenters filters: one flat MongoDB filter, so the database can pick an index for it."""

from datetime import UTC, datetime

from services.registry.documents import all_of, center_query
from services.registry.domain import LicenceStatus
from services.registry.listing import CenterFilter

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_no_filter_matches_everything() -> None:
    assert center_query(CenterFilter(), NOW) == {}


def test_a_governorate_filter_is_a_bare_equality_the_place_index_serves() -> None:
    assert center_query(CenterFilter(governorate_code="DA"), NOW) == {"governorate_code": "DA"}


def test_every_filter_together_is_still_one_flat_filter() -> None:
    wanted = CenterFilter("DA", "DA-NIZ", LicenceStatus.ACTIVE, "ROP-1", "أبراج")
    query = center_query(wanted, NOW)
    assert "$and" not in query
    assert query["governorate_code"] == "DA"
    assert query["wilayat_code"] == "DA-NIZ"
    assert query["offered_service_codes"] == "ROP-1"
    assert query["licence.status"] == "ACTIVE"
    assert query["search"] == {"$regex": "ابراج"}


def test_clauses_on_the_same_key_are_kept_apart_rather_than_overwritten() -> None:
    first, second = {"$or": [{"a": 1}, {"b": 1}]}, {"$or": [{"c": 1}, {"d": 1}]}
    assert all_of(first, second) == {"$and": [first, second]}


def test_a_page_bound_joins_the_filter() -> None:
    after = {"_id": {"$gt": "01ABC"}}
    assert all_of({"governorate_code": "DA"}, after) == {"governorate_code": "DA", **after}
    assert all_of({}, after) == after
