"""Licence numbers that look alike are one licence: one canonical form, and what cannot be
folded to Latin letters, digits, "-" and "/" is refused."""

import re

import pytest

from services.registry.licence_numbers import (
    ALLOWED_TEXT,
    canonical,
    number_violations,
    spellings_pattern,
)


@pytest.mark.parametrize(
    "typed",
    [
        "DA-NIZ-0001",
        " da-niz-0001 ",
        "DA-NIZ-\u0660\u0660\u0660\u0661",  # Arabic-Indic digits
        "DA-NIZ-\u06f0\u06f0\u06f0\u06f1",  # extended Arabic-Indic (Persian) digits
        "\uff24\uff21-NIZ-\uff10\uff10\uff10\uff11",  # fullwidth letters and digits
        "DA\u2011NIZ\u20110001",  # non-breaking hyphens
        "DA\u2013NIZ\u2212" + "0001",  # en dash, minus sign
        "\u00a0DA-NIZ-0001\u00a0",
    ],
)
def test_each_way_of_typing_a_number_is_the_same_licence(typed: str) -> None:
    number = canonical(typed)
    assert number == "DA-NIZ-0001"
    assert number_violations("n", number) == []


@pytest.mark.parametrize(
    "typed",
    [
        "\u0410A-NIZ-0001",  # Cyrillic A beside a Latin one
        "DA-NIZ-0001\u0301",  # a combining accent
        "DA - NIZ - 0001",  # inner spaces
        "DA_NIZ_0001",
        "مركز-1",
    ],
)
def test_what_does_not_fold_to_latin_letters_and_digits_is_refused(typed: str) -> None:
    assert [v.description for v in number_violations("n", canonical(typed))] == [ALLOWED_TEXT]


def test_a_slash_is_kept() -> None:
    assert canonical("cr/2024/77") == "CR/2024/77"


def test_the_spellings_of_a_number_are_those_that_fold_to_it() -> None:
    pattern = re.compile(spellings_pattern("DA-NIZ-0001"), re.IGNORECASE)
    for stored in (
        "DA-NIZ-0001",
        "da-niz-0001",
        "DA-NIZ-\u0660\u0660\u0660\u0661",
        "\uff24A\u2011NIZ-0001",
    ):
        assert pattern.match(stored)
        assert canonical(stored) == "DA-NIZ-0001"
    for other in ("DA-NIZ-0002", "DA-NIZ-00011", "DA-NIZ-000", "XDA-NIZ-0001"):
        assert not pattern.match(other)
