"""Oman's governorates, wilayats and agencies, loaded from data/oman.json in this package."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

from sanad.errors import Invalid, Violation, check


@dataclass(frozen=True)
class Wilayat:
    code: str
    governorate_code: str
    name_en: str
    name_ar: str


@dataclass(frozen=True)
class Governorate:
    code: str
    name_en: str
    name_ar: str
    wilayats: tuple[Wilayat, ...]


@dataclass(frozen=True)
class Agency:
    code: str
    name_en: str
    name_ar: str


Coded = TypeVar("Coded", Wilayat, Governorate, Agency)


def _by_code(items: Iterable[Coded]) -> tuple[Coded, ...]:
    return tuple(sorted(items, key=lambda item: item.code))


@dataclass(frozen=True)
class ReferenceData:
    """Immutable reference data with the checks other rules need; every list by code, as the
    List RPCs promise (the data file keeps the official order)."""

    governorates: tuple[Governorate, ...]
    agencies: tuple[Agency, ...]

    @classmethod
    def load(cls) -> "ReferenceData":
        """Read the packaged data file."""
        text = resources.files("services.registry").joinpath("data/oman.json").read_text("utf-8")
        raw = json.loads(text)
        governorates = [
            Governorate(
                g["code"],
                g["name_en"],
                g["name_ar"],
                _by_code(
                    Wilayat(w["code"], g["code"], w["name_en"], w["name_ar"]) for w in g["wilayats"]
                ),
            )
            for g in raw["governorates"]
        ]
        agencies = (Agency(a["code"], a["name_en"], a["name_ar"]) for a in raw["agencies"])
        return cls(_by_code(governorates), _by_code(agencies))

    def wilayats(self, governorate_code: str = "") -> list[Wilayat]:
        """The wilayats of one governorate, or of all when empty, by code."""
        found = [
            w
            for g in self.governorates
            if not governorate_code or g.code == governorate_code
            for w in g.wilayats
        ]
        return sorted(found, key=lambda w: w.code)

    def check_place(self, governorate_code: str, wilayat_code: str) -> None:
        """Invalid for an unknown code, and on the wilayat for one of another governorate: the
        reference data is fixed, so the caller's pair is wrong, not the registry's state."""
        by_code = {g.code: g for g in self.governorates}
        wilayat = next((w for w in self.wilayats() if w.code == wilayat_code), None)
        found = []
        if governorate_code not in by_code:
            found.append(
                Violation("center.governorate_code", f"unknown governorate {governorate_code!r}")
            )
        if wilayat is None:
            found.append(Violation("center.wilayat_code", f"unknown wilayat {wilayat_code!r}"))
        elif governorate_code in by_code and wilayat.governorate_code != governorate_code:
            found.append(
                Violation(
                    "center.wilayat_code",
                    f"wilayat {wilayat_code} is in governorate {wilayat.governorate_code}, "
                    f"not {governorate_code}",
                )
            )
        check(found)

    def check_agency(self, agency_code: str) -> None:
        if agency_code not in {a.code for a in self.agencies}:
            raise Invalid([Violation("service.agency_code", f"unknown agency {agency_code!r}")])
