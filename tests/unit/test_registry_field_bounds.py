"""Registry fields have bounds far above any real value, so that a stored centre or service,
every listing and watch message carrying it, and any error naming it stay small."""

import asyncio
from dataclasses import replace

import pytest

from sanad.domain.money import MAX_FEE_BAISA
from sanad.domain.staff import MAX_STAFF
from sanad.errors import Invalid
from services.registry.domain import CatalogService, Center, Contact, Licence, LicenceStatus
from services.registry.operations import check_services
from services.registry.validation import validate_center, validate_change, validate_service

LONG_CODE = "X" * 129
LONG_TEXT = "ن" * 501


def centre(**changes: object) -> Center:
    fields: dict[str, object] = {
        "id": "C1",
        "name_ar": "مركز",
        "name_en": "Centre",
        "owner_establishment": "Owner",
        "governorate_code": "DA",
        "wilayat_code": "DA-NIZ",
        "omani_staff": 2,
        "total_staff": 3,
        "licence": Licence(number="L-1", status=LicenceStatus.APPLIED),
    }
    fields.update(changes)
    return Center(**fields)  # type: ignore[arg-type]


def fields_of(caught: pytest.ExceptionInfo[Invalid]) -> set[str]:
    return {violation.field for violation in caught.value.violations}


def test_a_centre_with_overlong_codes_and_text_is_invalid_by_field() -> None:
    with pytest.raises(Invalid) as caught:
        validate_center(
            centre(
                name_en=LONG_TEXT,
                wilayat_code=LONG_CODE,
                licence=Licence(number=LONG_CODE, status=LicenceStatus.APPLIED),
                contact=Contact(address=LONG_TEXT),
            )
        )
    assert fields_of(caught) == {
        "center.name_en",
        "center.wilayat_code",
        "center.licence.number",
        "center.contact.address",
    }
    assert LONG_TEXT not in str(caught.value)


def test_a_centre_at_the_bounds_is_valid() -> None:
    validate_center(centre(name_en="n" * 500, wilayat_code="W" * 128))


def test_a_service_with_overlong_fields_or_too_many_documents_is_invalid_by_field() -> None:
    service = CatalogService(
        code=LONG_CODE,
        agency_code="ROP",
        name_ar=LONG_TEXT,
        name_en="Visa",
        fee_baisa=5000,
        sla_hours=48,
        required_documents=("passport", LONG_TEXT),
    )
    with pytest.raises(Invalid) as caught:
        validate_service(service)
    assert fields_of(caught) == {"service.code", "service.name_ar", "service.required_documents[1]"}


class NoCatalogue:
    """A store that must not be asked about codes no centre may have."""

    async def existing_service_codes(self, codes: set[str], session: object = None) -> set[str]:
        raise AssertionError("looked up codes that the bounds refuse")


def test_service_codes_are_bounded_before_any_is_looked_up() -> None:
    too_many = tuple(f"S{n}" for n in range(501))
    with pytest.raises(Invalid) as caught:
        asyncio.run(check_services(NoCatalogue(), too_many, (LONG_CODE,)))  # type: ignore[arg-type]
    assert fields_of(caught) == {"offered_service_codes", "blocked_service_codes[0]"}


def visa(fee_baisa: int = 5000, documents: tuple[str, ...] = ()) -> CatalogService:
    return CatalogService(
        "ROP-V", "ROP", "تأشيرة", "Visa", fee_baisa=fee_baisa, sla_hours=48,
        required_documents=documents,
    )  # fmt: skip


def test_a_fee_is_free_up_to_the_batch_paths_bound() -> None:
    for fee in (0, MAX_FEE_BAISA):
        validate_service(visa(fee))
    for fee in (-1, MAX_FEE_BAISA + 1, 2**62):
        with pytest.raises(Invalid) as caught:
            validate_service(visa(fee))
        assert fields_of(caught) == {"service.fee_baisa"}


def test_a_change_need_not_fix_what_the_stored_centre_broke_before_a_rule_was_tightened() -> None:
    # Stored before invisible characters were refused, in a field no update mask reaches.
    stored = centre(licence=Licence(number="DA-\u200b7"))
    renamed = replace(stored, name_en="Abraj Centre, Nizwa")
    validate_change(validate_center, stored, renamed)
    # A change still may not break a rule the centre kept.
    with pytest.raises(Invalid) as refused:
        validate_change(validate_center, stored, replace(renamed, name_en="Abraj\x00"))
    assert [v.field for v in refused.value.violations] == ["center.name_en"]


def test_staff_counts_are_bounded_by_the_maximum() -> None:
    validate_center(centre(omani_staff=MAX_STAFF, total_staff=MAX_STAFF))
    with pytest.raises(Invalid) as caught:
        validate_center(centre(omani_staff=2_000_000_000, total_staff=2_147_483_647))
    assert {(v.field, v.description) for v in caught.value.violations} == {
        ("center.omani_staff", "must be at most 10,000"),
        ("center.total_staff", "must be at most 10,000"),
    }


def test_a_centre_stored_above_the_staff_maximum_still_changes_and_may_come_down() -> None:
    stored = centre(omani_staff=2_000_000_000, total_staff=2_147_483_647)
    validate_change(validate_center, stored, replace(stored, name_en="Abraj Centre, Nizwa"))
    validate_change(validate_center, stored, replace(stored, omani_staff=5, total_staff=8))
    with pytest.raises(Invalid) as refused:
        validate_change(validate_center, centre(), replace(centre(), total_staff=MAX_STAFF + 1))
    assert [v.field for v in refused.value.violations] == ["center.total_staff"]


@pytest.mark.parametrize(
    ("phone", "email", "refused"),
    [
        ("+96824000000", "centre@example.om", set()),
        ("+968 2441 0000", "", set()),
        ("", "", set()),
        ("abc", "not an email", {"center.contact.phone", "center.contact.email"}),
        ("24410000", "a@b", {"center.contact.phone", "center.contact.email"}),
        ("+96824000000000000", "a@@example.om", {"center.contact.phone", "center.contact.email"}),
    ],
)
def test_a_contact_phone_or_email_given_must_be_one(
    phone: str, email: str, refused: set[str]
) -> None:
    # The registry helper registered a centre with phone "abc" and e-mail "not an email".
    contact = Contact(phone=phone, email=email)
    if not refused:
        validate_center(centre(contact=contact))
        return
    with pytest.raises(Invalid) as caught:
        validate_center(centre(contact=contact))
    assert fields_of(caught) == refused


def test_a_document_named_twice_is_refused_naming_the_repeat() -> None:
    service = visa(documents=("Passport copy", "Photo", "passport  COPY", "Photo"))
    with pytest.raises(Invalid) as caught:
        validate_service(service)
    assert [(v.field, v.description) for v in caught.value.violations] == [
        ("service.required_documents[2]", "repeats service.required_documents[0]"),
        ("service.required_documents[3]", "repeats service.required_documents[1]"),
    ]


def test_a_service_stored_with_a_repeated_document_may_still_change() -> None:
    # Stored before the rule: its other fields stay editable (validate_change).
    before = visa(documents=("Photo", "Photo"))
    validate_change(validate_service, before, replace(before, fee_baisa=6000))
    with pytest.raises(Invalid):
        validate_change(
            validate_service, before, replace(before, required_documents=("Photo", "ID", "id"))
        )
