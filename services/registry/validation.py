"""Field rules of centres, catalogue services and licence transitions, with no I/O.

Codes and ids (governorate, wilayat, licence number, service, agency) and free text (names,
contact, documents) have bounds far above any real value, so a stored centre or service, every
listing and watch message that carries it, and any error naming it stay small. Staff counts are
bounded (MAX_STAFF) so that a governorate's summed figures stay far inside their int32.
"""

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from sanad.domain.characters import (
    REQUIRED,
    code_violations,
    name_violations,
    text_violations,
    visible,
)
from sanad.domain.codes import overlong_codes
from sanad.domain.money import MAX_FEE_BAISA
from sanad.domain.staff import MAX_STAFF
from sanad.errors import Invalid, Violation, check
from services.registry.domain import CatalogService, Center
from services.registry.licence_numbers import number_violations

E = TypeVar("E", Center, CatalogService)
MAX_TEXT_LENGTH = 500
MAX_LIST_LENGTH = 500
# A catalogue service's code: capital Latin letters and digits, in parts joined by single
# hyphens (ROP-VISA-RENEW). Centres and agency systems key on it, and it names the service in
# every listing: a code that only looks like another (a Cyrillic letter, fullwidth forms, lower
# case, spaces) would pass for that service.
SERVICE_CODE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
SERVICE_CODE_RULE = (
    "must be capital letters A-Z and digits, in parts joined by single hyphens (ROP-VISA-RENEW)"
)
# How to reach a centre, when given: a phone number in international form (a plus and 7 to 15
# digits, spaces and hyphens between them allowed) and an e-mail address with one @ and a dot in
# its domain. Contact details are what a ministry or a citizen uses to reach the centre; "abc"
# reaches nobody.
PHONE = re.compile(r"\+[0-9](?:[ -]?[0-9]){6,14}")
PHONE_RULE = "must be in international form, e.g. +96824000000"
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
EMAIL_RULE = "must be an e-mail address, e.g. centre@example.om"


def too_long(fields: dict[str, str], limit: int) -> list[Violation]:
    """A violation for each of fields longer than limit, naming the field but not the value."""
    return [
        Violation(name, f"must be at most {limit} characters")
        for name, value in fields.items()
        if len(value) > limit
    ]


def list_bounds(name: str, values: tuple[str, ...], limit: int) -> list[Violation]:
    """A list of at most MAX_LIST_LENGTH values, each at most `limit` characters."""
    if len(values) > MAX_LIST_LENGTH:
        return [Violation(name, f"must have at most {MAX_LIST_LENGTH} entries")]
    return too_long({f"{name}[{i}]": value for i, value in enumerate(values)}, limit)


def validate_reason(reason: str) -> None:
    """A transition's reason: required (DESIGN section 3), showing something, holding no
    control character, and bounded as other free text."""
    if not visible(reason):
        raise Invalid([Violation("reason", "is required: say why the licence changes")])
    check(too_long({"reason": reason}, MAX_TEXT_LENGTH) + text_violations({"reason": reason}))


def validate_center(center: Center) -> None:
    """Field rules of a centre that need no reference data; raise Invalid."""
    codes = {
        "center.governorate_code": center.governorate_code,
        "center.wilayat_code": center.wilayat_code,
        "center.licence.number": center.licence.number,
    }
    names = {
        "center.name_ar": center.name_ar,
        "center.name_en": center.name_en,
        "center.owner_establishment": center.owner_establishment,
    }
    contact = {
        "center.contact.phone": center.contact.phone,
        "center.contact.email": center.contact.email,
        "center.contact.address": center.contact.address,
    }
    found = overlong_codes(codes) + too_long(names | contact, MAX_TEXT_LENGTH)
    found += [Violation(name, REQUIRED) for name, value in codes.items() if not value]
    found += code_violations(codes) + name_violations(names) + text_violations(contact)
    found += _contact_violations(center.contact.phone, center.contact.email, found)
    if not {v.field for v in found} & {"center.licence.number"}:
        found += number_violations("center.licence.number", center.licence.number)
    if center.omani_staff < 0:
        found.append(Violation("center.omani_staff", "must not be negative"))
    staff = {"center.omani_staff": center.omani_staff, "center.total_staff": center.total_staff}
    found += [
        Violation(name, f"must be at most {MAX_STAFF:,}")
        for name, count in staff.items()
        if count > MAX_STAFF
    ]
    if center.total_staff < center.omani_staff:
        found.append(Violation("center.total_staff", "must be at least omani_staff"))
    check(found)


def _contact_violations(phone: str, email: str, found: list[Violation]) -> list[Violation]:
    """A phone or e-mail given but not one (unless already refused for its length or
    characters)."""
    named = {v.field for v in found}
    rules = (
        ("center.contact.phone", phone, PHONE, PHONE_RULE),
        ("center.contact.email", email, EMAIL, EMAIL_RULE),
    )
    return [
        Violation(name, rule)
        for name, value, pattern, rule in rules
        if value and name not in named and not pattern.fullmatch(value)
    ]


def validate_change(validate: Callable[[E], None], current: E, changed: E) -> None:
    """validate(changed), except what the stored entity broke already: a rule tightened after
    it was stored (a character now refused, a bound now set) must not keep it from ever
    changing, the more so as the field may be one no update can reach (the licence number). A
    change may still not break a rule the entity kept."""
    try:
        validate(changed)
    except Invalid as refused:
        try:
            validate(current)
            already: set[Violation] = set()
        except Invalid as before:
            already = set(before.violations)
        check([violation for violation in refused.violations if violation not in already])


def validate_service(service: CatalogService) -> None:
    """Field rules of a catalogue service; raise Invalid."""
    codes = {"service.code": service.code, "service.agency_code": service.agency_code}
    names = {"service.name_ar": service.name_ar, "service.name_en": service.name_en}
    documents = {
        f"service.required_documents[{i}]": document
        for i, document in enumerate(service.required_documents)
    }
    found = overlong_codes(codes) + too_long(names, MAX_TEXT_LENGTH)
    found += list_bounds("service.required_documents", service.required_documents, MAX_TEXT_LENGTH)
    found += [Violation(name, REQUIRED) for name, value in codes.items() if not value]
    found += code_violations(codes) + name_violations(names)
    flagged = {v.field for v in found}
    if service.code and "service.code" not in flagged and not SERVICE_CODE.fullmatch(service.code):
        found.append(Violation("service.code", SERVICE_CODE_RULE))
    if len(documents) <= MAX_LIST_LENGTH:
        found += name_violations(documents) + repeated_documents(service.required_documents)
    if not 0 <= service.fee_baisa <= MAX_FEE_BAISA:
        found.append(
            Violation("service.fee_baisa", f"must be from 0 (free) to {MAX_FEE_BAISA:,} baisa")
        )
    if service.sla_hours <= 0:
        found.append(Violation("service.sla_hours", "must be a positive number of hours"))
    check(found)


def repeated_documents(documents: tuple[str, ...]) -> list[Violation]:
    """A document named twice (letter case and spacing aside): a centre would ask a citizen
    for it twice, and an agency's edit of one would leave the other."""
    first: dict[str, int] = {}
    found = []
    for i, document in enumerate(documents):
        key = " ".join(document.split()).casefold()
        if key in first:
            found.append(
                Violation(
                    f"service.required_documents[{i}]",
                    f"repeats service.required_documents[{first[key]}]",
                )
            )
        first.setdefault(key, i)
    return found


def another_agency_violations(service: CatalogService, agencies: Iterable[str]) -> list[Violation]:
    """A code that reads as another agency's (ROP-... for a service of MOL), whoever publishes
    it: centres and citizens read the agency from the code. A code with no agency's prefix, or
    with its own, passes."""
    if service.code.startswith(f"{service.agency_code}-"):
        return []
    for agency in agencies:
        if agency != service.agency_code and service.code.startswith(f"{agency}-"):
            return [
                Violation(
                    "service.code",
                    f"reads as agency {agency}'s; the service is {service.agency_code}'s",
                )
            ]
    return []


def agency_prefix_violations(service: CatalogService) -> list[Violation]:
    """A ministry's new service's code begins with the code of the agency it belongs to and a
    hyphen (ROP-...), so no ministry publishes a code that reads as another agency's."""
    prefix = f"{service.agency_code}-"
    if service.code.startswith(prefix) and len(service.code) > len(prefix):
        return []
    return [Violation("service.code", f"must begin with {prefix} (the agency of the service)")]
