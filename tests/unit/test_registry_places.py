"""A centre's place: its wilayat belongs to its governorate, and a wilayat of another one is the
caller's mistake (INVALID_ARGUMENT on center.wilayat_code), never the registry's state. The place
is checked when an update moves the centre, so one placed before the reference data changed
still changes its other fields."""

from dataclasses import replace
from typing import cast

import pytest

from sanad.deadline import NO_DEADLINE
from sanad.errors import Invalid, Violation
from services.registry.centers import CenterOperations
from services.registry.domain import Center, Licence
from services.registry.operations import ChangeFeed, SessionCheck, Store
from services.registry.reference import ReferenceData

STORED = Center("C1", "ع", "Centre", "Est", "DA", "DA-NIZ", 3, 5, Licence("DA-1"), revision=1)
ELSEWHERE = "wilayat DA-NIZ is in governorate DA, not MA"


class OneCentre:
    """A store holding one centre, which keeps what is saved."""

    def __init__(self, center: Center) -> None:
        self.center = center

    async def get_center(self, center_id: str) -> Center | None:
        return self.center if center_id == self.center.id else None

    async def save_center(
        self, center: Center, *, new: bool, check: SessionCheck | None = None
    ) -> Center:
        if check is not None:
            await check(None)
        self.center = replace(center, revision=self.center.revision + 1)
        return self.center


def operations(stored: Center = STORED) -> tuple[CenterOperations, OneCentre]:
    store = OneCentre(stored)
    return CenterOperations(cast(Store, store), ReferenceData.load(), ChangeFeed()), store


async def test_registering_a_wilayat_of_another_governorate_is_invalid_on_the_wilayat() -> None:
    centers, _ = operations()
    with pytest.raises(Invalid) as caught:
        await centers.register(replace(STORED, id="", governorate_code="MA", revision=0))
    assert caught.value.violations == (Violation("center.wilayat_code", ELSEWHERE),)


async def test_moving_only_the_governorate_away_from_the_wilayat_is_invalid_on_the_wilayat() -> (
    None
):
    centers, store = operations()
    patch = replace(STORED, governorate_code="MA")
    with pytest.raises(Invalid) as caught:
        await centers.update(patch, ["governorate_code"], deadline=NO_DEADLINE)
    assert caught.value.violations == (Violation("center.wilayat_code", ELSEWHERE),)
    assert store.center == STORED


def test_an_unknown_governorate_is_named_alone_when_the_wilayat_exists() -> None:
    with pytest.raises(Invalid) as caught:
        ReferenceData.load().check_place("XX", "DA-NIZ")
    assert [v.field for v in caught.value.violations] == ["center.governorate_code"]


async def test_a_centre_whose_wilayat_left_the_reference_data_still_changes_other_fields() -> None:
    centers, store = operations(replace(STORED, wilayat_code="DA-GONE"))
    patch = replace(STORED, omani_staff=4)
    changed = await centers.update(patch, ["omani_staff"], deadline=NO_DEADLINE)
    assert (changed.omani_staff, changed.wilayat_code) == (4, "DA-GONE")
    assert store.center == changed


async def test_a_centre_whose_wilayat_left_the_reference_data_moves_only_to_a_listed_one() -> None:
    centers, store = operations(replace(STORED, wilayat_code="DA-GONE"))
    with pytest.raises(Invalid) as caught:
        await centers.update(STORED, ["governorate_code"], deadline=NO_DEADLINE)
    assert [v.field for v in caught.value.violations] == ["center.wilayat_code"]
    assert store.center.wilayat_code == "DA-GONE"
    moved = await centers.update(STORED, ["wilayat_code"], deadline=NO_DEADLINE)
    assert moved.wilayat_code == "DA-NIZ"
