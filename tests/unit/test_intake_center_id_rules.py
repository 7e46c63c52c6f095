"""A centre or batch identity's center_id is validated before its scope is checked: a missing or
over-long one is INVALID_ARGUMENT naming it, never PERMISSION_DENIED echoing it."""

import pytest

from sanad.deadline import Deadline
from sanad.errors import Invalid, PermissionDenied, Violation
from sanad.security.identity import Identity, Role
from tests.unit.test_intake_submit import setup, submission

DESK = Identity(subject="desk", role=Role.CENTRE, center_id="C1")
LOADER = Identity(subject="batch-C1", role=Role.BATCH, center_id="C1")


@pytest.mark.parametrize("identity", [DESK, LOADER])
@pytest.mark.parametrize(
    ("center_id", "description"),
    [("", "is required"), ("X" * 100_000, "must be at most 128 characters")],
)
async def test_a_missing_or_overlong_center_id_is_invalid_before_the_scope(
    identity: Identity, center_id: str, description: str
) -> None:
    s = setup()
    with pytest.raises(Invalid) as refused:
        await s.intake.submit(submission(center_id=center_id), "c", identity, Deadline(5.0))
    assert Violation("center_id", description) in refused.value.violations
    assert len(refused.value.message) < 300
    assert s.publisher.sent == []


async def test_every_bad_field_is_named_with_the_center_id() -> None:
    s = setup()
    bad = submission(center_id="", civil_number="12ab", fee_baisa=-1)
    with pytest.raises(Invalid) as refused:
        await s.intake.submit(bad, "c", DESK, Deadline(5.0))
    fields = {v.field for v in refused.value.violations}
    assert {"center_id", "beneficiary_civil_number", "fee_baisa"} <= fields


async def test_another_well_formed_centre_is_still_denied_first() -> None:
    # A valid id of another centre: refused for the scope before its licence or services can
    # show in a validation error, as before.
    s = setup()
    with pytest.raises(PermissionDenied):
        await s.intake.submit(submission(center_id="C2", fee_baisa=1), "c", DESK, Deadline(5.0))
