"""Field masks of UpdateCenter and UpdateCatalogService."""

from datetime import UTC, datetime

import pytest

from sanad.errors import Invalid
from services.registry.domain import CatalogService, Center, Contact, Licence
from services.registry.masks import (
    apply_center_mask,
    apply_service_mask,
    center_mask,
    service_mask,
)

CURRENT = Center(
    id="C1",
    name_ar="مركز النور",
    name_en="Al Noor",
    owner_establishment="مؤسسة النور",
    governorate_code="DA",
    wilayat_code="DA-NIZ",
    omani_staff=2,
    total_staff=3,
    licence=Licence("LIC-1"),
    contact=Contact("+96824000000", "noor@example.om", "Nizwa souq"),
    revision=7,
    create_time=datetime(2025, 1, 1, tzinfo=UTC),
)
PATCH = Center(
    id="C1",
    name_ar="مركز الضياء",
    name_en="Al Diya",
    owner_establishment="x",
    governorate_code="MA",
    wilayat_code="MA-SEB",
    omani_staff=9,
    total_staff=9,
    licence=Licence("OTHER"),
    contact=Contact("+96899999999", "", ""),
)


def test_only_the_masked_fields_change() -> None:
    changed = apply_center_mask(CURRENT, PATCH, center_mask(["name_en", "omani_staff"]))
    assert (changed.name_en, changed.omani_staff) == ("Al Diya", 9)
    assert changed.name_ar == CURRENT.name_ar
    assert changed.licence == CURRENT.licence
    assert (changed.revision, changed.create_time) == (7, CURRENT.create_time)


def test_a_contact_subfield_changes_alone() -> None:
    changed = apply_center_mask(CURRENT, PATCH, center_mask(["contact.phone"]))
    assert changed.contact == Contact("+96899999999", "noor@example.om", "Nizwa souq")


def test_the_whole_contact_replaces_every_subfield() -> None:
    changed = apply_center_mask(CURRENT, PATCH, center_mask(["contact", "contact.email"]))
    assert changed.contact == PATCH.contact


@pytest.mark.parametrize(
    "path",
    ["id", "licence", "licence.number", "revision", "create_time", "offered_service_codes", "x"],
)
def test_an_immutable_or_unknown_centre_path_is_refused_on_update_mask(path: str) -> None:
    with pytest.raises(Invalid) as caught:
        center_mask(["name_en", path])
    assert [v.field for v in caught.value.violations] == ["update_mask"]
    assert path in caught.value.violations[0].description


@pytest.mark.parametrize(
    ("path", "said"),
    [
        # No RPC changes a licence's number; its status and expiry change by transitions.
        ("licence.number", "'licence.number' cannot be changed: a licence keeps its number"),
        ("licence.status", "'licence.status' changes through TransitionLicence"),
        ("licence", "'licence' changes through TransitionLicence"),
        # A subfield the contact does not have is no field, not a field that cannot change.
        ("contact.fax", "'contact.fax' is not a field"),
        ("revision", "'revision' cannot be changed"),
    ],
)
def test_a_refused_centre_path_is_told_why_truly(path: str, said: str) -> None:
    with pytest.raises(Invalid) as caught:
        center_mask([path])
    assert [(v.field, v.description) for v in caught.value.violations] == [("update_mask", said)]


def test_every_bad_path_gets_its_own_violation() -> None:
    with pytest.raises(Invalid) as caught:
        service_mask(["code", "status", "nope", "fee_baisa"])
    assert len(caught.value.violations) == 3


def test_an_empty_mask_is_refused() -> None:
    with pytest.raises(Invalid) as caught:
        service_mask([])
    assert caught.value.violations[0].field == "update_mask"


def test_a_service_mask_copies_the_named_fields() -> None:
    current = CatalogService("S", "ROP", "أ", "A", 1000, 24, ("passport",), version=2)
    patch = CatalogService("S", "MOL", "ب", "B", 2500, 48, ())
    changed = apply_service_mask(current, patch, service_mask(["fee_baisa", "required_documents"]))
    assert (changed.fee_baisa, changed.required_documents) == (2500, ())
    assert (changed.agency_code, changed.name_en, changed.version) == ("ROP", "A", 2)
