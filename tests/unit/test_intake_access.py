"""Who may submit for which centre: centres for themselves, ministries for their own services."""

from typing import Any

import pytest

from sanad.errors import PermissionDenied
from sanad.security.identity import Identity, Role
from services.intake import access

ADMIN = Identity("admin", Role.ADMIN)
ROP = Identity("rop-systems", Role.MINISTRY, agency_code="ROP")
DESK = Identity("nizwa-desk", Role.CENTRE, center_id="C1")
LOADER = Identity("batch-C1", Role.BATCH, center_id="C1")


@pytest.mark.parametrize("identity", [DESK, LOADER])
def test_a_centre_or_batch_identity_names_only_its_own_centre(identity: Identity) -> None:
    access.check_center_scope(identity, "C1")
    with pytest.raises(PermissionDenied, match="submit for centre C2"):
        access.check_center_scope(identity, "C2")


@pytest.mark.parametrize("identity", [ADMIN, ROP])
def test_the_centre_scope_does_not_bind_admins_or_ministries(identity: Identity) -> None:
    access.check_center_scope(identity, "C2")


def test_a_ministry_submits_only_for_its_own_agencys_services() -> None:
    access.check_submit(ROP, "C2", "ROP")
    with pytest.raises(PermissionDenied):
        access.check_submit(ROP, "C2", "MOL")


def test_a_centre_submits_for_itself_whatever_the_agency() -> None:
    access.check_submit(DESK, "C1", "MOL")
    with pytest.raises(PermissionDenied):
        access.check_submit(DESK, "C2", "MOL")


@pytest.mark.parametrize(
    "deny",
    [
        lambda long: access.check_center_scope(DESK, long),
        lambda long: access.check_submit(ROP, long, "MOL"),
        lambda long: access.listing_scope(DESK, long),
    ],
    ids=["scope", "submit", "listing"],
)
def test_a_denial_shows_at_most_128_characters_of_a_callers_id(deny: Any) -> None:
    long = "X" * 100_000
    with pytest.raises(PermissionDenied) as denied:
        deny(long)
    assert "X" * 128 in denied.value.message
    assert "X" * 129 not in denied.value.message
    assert len(denied.value.message) < 300
