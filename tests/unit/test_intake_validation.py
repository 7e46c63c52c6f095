"""Intake's submission rules against a registry snapshot."""

from datetime import UTC, datetime, timedelta

import pytest

from sanad.domain.submissions import CenterView, Channel, ServiceView, Submission, validate
from sanad.errors import Invalid, NotFound, PreconditionFailed

NOW = datetime(2024, 6, 1, tzinfo=UTC)
CENTER = CenterView(
    id="C1",
    governorate_code="DA",
    wilayat_code="DA-NIZ",
    licence_status="ACTIVE",
    licence_expires_at=NOW + timedelta(days=30),
    offered=frozenset({"ROP-VISA"}),
    blocked=frozenset(),
)
SERVICE = ServiceView("ROP-VISA", "ROP", 5000, 48, 1, True)


def submission(**changes: object) -> Submission:
    fields: dict[str, object] = {
        "request_id": "r-1",
        "center_id": "C1",
        "service_code": "ROP-VISA",
        "channel": Channel.COUNTER,
        "fee_baisa": 5000,
        "civil_number": "12345678",
    }
    fields.update(changes)
    return Submission(**fields)  # type: ignore[arg-type]


def test_a_good_submission_passes() -> None:
    assert validate(submission(), CENTER, SERVICE, NOW) == (CENTER, SERVICE)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(Invalid) as caught:
        validate(submission(channel=None, fee_baisa=1, civil_number="12x"), CENTER, SERVICE, NOW)
    fields = {v.field for v in caught.value.violations}
    assert fields == {"channel", "fee_baisa", "beneficiary_civil_number"}


def test_an_overlong_centre_id_or_service_code_is_invalid_by_field_without_repeating_it() -> None:
    """A megabyte of centre id used to come back in "centre ... not found" and its log line."""
    long = "C" * 10_000
    with pytest.raises(Invalid) as caught:
        validate(submission(center_id=long, service_code=long), None, None, NOW)
    assert {(v.field, v.description) for v in caught.value.violations} == {
        ("center_id", "must be at most 128 characters"),
        ("service_code", "must be at most 128 characters"),
    }
    assert long not in str(caught.value)


def test_an_unknown_centre_is_not_found() -> None:
    with pytest.raises(NotFound):
        validate(submission(center_id="nope"), None, SERVICE, NOW)


@pytest.mark.parametrize(
    ("center", "service"),
    [
        (CENTER.__class__(**{**CENTER.__dict__, "licence_status": "SUSPENDED"}), SERVICE),
        (CENTER.__class__(**{**CENTER.__dict__, "licence_expires_at": NOW}), SERVICE),
        (CENTER.__class__(**{**CENTER.__dict__, "offered": frozenset()}), SERVICE),
        (CENTER.__class__(**{**CENTER.__dict__, "blocked": frozenset({"ROP-VISA"})}), SERVICE),
        (CENTER, ServiceView("ROP-VISA", "ROP", 5000, 48, 1, False)),
    ],
    ids=["suspended", "expired", "not-offered", "blocked", "retired"],
)
def test_the_registry_state_must_allow_the_submission(
    center: CenterView, service: ServiceView
) -> None:
    with pytest.raises(PreconditionFailed):
        validate(submission(), center, service, NOW)


def test_the_fingerprint_changes_with_the_payload() -> None:
    secret = b"secret"
    assert submission().fingerprint(secret) == submission().fingerprint(secret)
    assert submission().fingerprint(secret) != submission(fee_baisa=4000).fingerprint(secret)
