"""A catalogue service's code is capital Latin letters and digits in hyphen-joined parts, so no
code passes for another that only looks like it; a ministry's new code begins with its agency's
code; and a service stored before the rule can still be updated."""

from dataclasses import replace

import pytest

from sanad.errors import Invalid, Violation
from services.registry.domain import CatalogService
from services.registry.validation import (
    SERVICE_CODE_RULE,
    agency_prefix_violations,
    another_agency_violations,
    validate_change,
    validate_service,
)


def service(code: str, agency: str = "ROP") -> CatalogService:
    return CatalogService(
        code=code, agency_code=agency, name_ar="تجديد", name_en="Renewal", fee_baisa=5000,
        sla_hours=48,
    )  # fmt: skip


@pytest.mark.parametrize("code", ["ROP-VISA-RENEW", "MOCIIP-CR-ISSUE", "S1", "ROP-2024-01"])
def test_a_code_of_capitals_and_digits_in_hyphen_joined_parts_passes(code: str) -> None:
    validate_service(service(code))


@pytest.mark.parametrize(
    "code",
    [
        "MOL-PERMIT-ISSU\u0415",  # a Cyrillic capital E
        "\uff2d\uff2f\uff2c-PERMIT-ISSUE",  # fullwidth MOL
        "mol-permit-issue",
        "MOL PERMIT ISSUE",
        "MOL--PERMIT",
        "-MOL",
        "MOL-",
        "MOL_PERMIT",
        "$where.x",
        "خدمة-١",
    ],
)
def test_a_code_that_only_looks_like_one_is_refused_by_field(code: str) -> None:
    with pytest.raises(Invalid) as refused:
        validate_service(service(code))
    assert list(refused.value.violations) == [Violation("service.code", SERVICE_CODE_RULE)]


def test_an_empty_or_control_code_gets_its_own_violation_only() -> None:
    for code, reason in (
        ("", "is required"),
        ("A\nB", "must not contain control or invisible characters"),
    ):
        with pytest.raises(Invalid) as refused:
            validate_service(service(code))
        assert [(v.field, v.description) for v in refused.value.violations] == [
            ("service.code", reason)
        ]


def test_a_ministrys_code_begins_with_the_agency_of_the_service() -> None:
    assert agency_prefix_violations(service("ROP-VISA-RENEW")) == []
    assert agency_prefix_violations(service("MOL-PERMIT-ISSUE", agency="MOL")) == []
    for code in ("MOL-PERMIT-ISSUE", "ROPX-VISA", "ROP-", "VISA"):
        assert agency_prefix_violations(service(code)) == [
            Violation("service.code", "must begin with ROP- (the agency of the service)")
        ]


def test_a_service_stored_before_the_rule_can_still_change() -> None:
    stored = service("rop visa")
    validate_change(validate_service, stored, replace(stored, fee_baisa=6000))
    with pytest.raises(Invalid):
        validate_change(validate_service, stored, replace(stored, sla_hours=0))


def test_nobodys_code_reads_as_another_agencys() -> None:
    agencies = ("ROP", "MOL", "MOH")
    assert another_agency_violations(service("ROP-VISA"), agencies) == []
    assert another_agency_violations(service("VISA-RENEW"), agencies) == []  # no agency's
    assert another_agency_violations(service("MOL-PERMIT"), agencies) == [
        Violation("service.code", "reads as agency MOL's; the service is ROP's")
    ]
    # An agency whose code begins with another's and a hyphen keeps its own codes.
    assert another_agency_violations(service("MOH-ED-X", agency="MOH-ED"), agencies) == []
