"""Ids and codes have one length rule, kept in sanad.domain.codes: intake, the registry and the
batch worker refuse a code one past it alike, by field, in the same words, and take one at it."""

import unicodedata

import pytest

from sanad.domain.characters import BLANK_OR_UNCOMPOSED, CONTROL_OR_INVISIBLE
from sanad.domain.codes import (
    MAX_CODE_LENGTH,
    overlong_codes,
    request_id_violations,
    required_code_violations,
)
from sanad.domain.submissions import Channel, Submission, field_violations
from sanad.errors import Invalid, Violation
from services.registry.domain import Center, Licence
from services.registry.operations import check_filter_codes, require
from services.registry.validation import validate_center
from workers.batch.content import overlong_codes as overlong_item_codes

AT_BOUND = "C" * MAX_CODE_LENGTH
PAST_BOUND = "C" * (MAX_CODE_LENGTH + 1)
TOO_LONG = f"must be at most {MAX_CODE_LENGTH} characters"


def centre(wilayat_code: str) -> Center:
    return Center("C1", "مركز", "Centre", "Owner", "DA", wilayat_code, 2, 3, Licence("L-1"))


def submission(code: str) -> Submission:
    return Submission(code, code, code, Channel.COUNTER, 0, "12345678")


def refusals(code: str) -> dict[str, list[Violation]]:
    """What each place that takes a code says of it, by place."""
    said = {
        "shared": required_code_violations("center_id", code),
        "intake submission": [
            v for v in field_violations(submission(code), None) if v.description == TOO_LONG
        ],
        "intake change": request_id_violations(code),
        "batch item": overlong_item_codes(submission(code)),
    }
    for place, check in {
        "registry id": lambda: require(code, "center_id"),
        "registry filter": lambda: check_filter_codes({"center_id": code}),
        "registry centre": lambda: validate_center(centre(wilayat_code=code)),
    }.items():
        try:
            check()
            said[place] = []
        except Invalid as refused:
            said[place] = list(refused.violations)
    return said


def test_a_code_at_the_bound_is_taken_everywhere() -> None:
    assert all(found == [] for found in refusals(AT_BOUND).values())


def test_a_code_past_the_bound_is_refused_everywhere_in_the_same_words() -> None:
    said = refusals(PAST_BOUND)
    assert all(found for found in said.values()), said
    assert {v.description for found in said.values() for v in found} == {TOO_LONG}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", [Violation("center_id", "is required")]),
        (AT_BOUND, []),
        (PAST_BOUND, [Violation("center_id", TOO_LONG)]),
    ],
)
def test_a_required_code_is_present_and_short(value: str, expected: list[Violation]) -> None:
    assert required_code_violations("center_id", value) == expected


def test_each_overlong_code_is_named_by_its_field_and_not_repeated() -> None:
    found = overlong_codes({"a": PAST_BOUND, "b": AT_BOUND, "c": PAST_BOUND})
    assert [v.field for v in found] == ["a", "c"]
    assert PAST_BOUND not in str(found)


@pytest.mark.parametrize("request_id", ["r-1\n", "r\x00-1", "r-\u200b1", "\x1b[2Jr-1"])
def test_a_request_id_with_a_control_or_invisible_character_is_refused_by_field(
    request_id: str,
) -> None:
    """Stored, returned and logged: it would print as another id, or rewrite a terminal."""
    item = Submission(request_id, "C1", "S-1", Channel.COUNTER, 0, "12345678")
    expected = [Violation("request_id", "must not contain control or invisible characters")]
    assert [v for v in field_violations(item, None) if v.field == "request_id"] == expected
    assert request_id_violations(request_id) == expected


def test_a_printable_request_id_of_any_script_is_taken() -> None:
    for request_id in ("r-1", "طلب-١", "2024/07/01 counter 3", "caf\u00e9"):
        assert request_id_violations(request_id) == []


@pytest.mark.parametrize(
    "request_id",
    [
        "r1 ",
        " r1",
        "r1\u00a0",
        "r\u30001",
        "\u3164",
        "r\u2800",
        "cafe\u0301",
        "r1\u2009x",
        "r1\u034f",  # combining grapheme joiner
        "r1\ufe00",  # variation selector
        "r1\U000e0100",  # variation selector supplement
        "r1\u17b4",  # Khmer invisible vowel
        "\ufe8d\ufe91",  # Arabic presentation forms of alef, beh
        "\ufb01le",  # the fi ligature
        "\uff32\uff11",  # fullwidth R1
    ],
)
def test_a_request_id_that_prints_as_another_is_refused_by_field(request_id: str) -> None:
    """A trailing or odd space, a blank-looking filler, an accent typed as two characters."""
    assert request_id_violations(request_id) == [Violation("request_id", BLANK_OR_UNCOMPOSED)]


def test_each_ascii_character_of_a_request_id_is_judged_as_its_category_says() -> None:
    # Printable ASCII is taken without a look at each character's category: the rules of
    # sanad.domain.characters, spelt out for every ASCII character, must agree with that.
    for code in range(128):
        character = chr(code)
        for request_id in (character, f"r{character}1", f"{character}r1", f"r1{character}"):
            category = unicodedata.category(character)
            if category in ("Cc", "Cf", "Zl", "Zp"):
                expected = [Violation("request_id", CONTROL_OR_INVISIBLE)]
            elif request_id != request_id.strip():
                expected = [Violation("request_id", BLANK_OR_UNCOMPOSED)]
            else:
                expected = []
            assert request_id_violations(request_id) == expected, repr(request_id)
