"""Codes and licence numbers hold no control or invisible character; names hold no control
character and show something, though Arabic names may carry joiners and direction marks."""

import pytest

from sanad.domain.characters import code_violations, name_violations, text_violations, visible
from sanad.errors import Violation


@pytest.mark.parametrize(
    "code", ["A\nB", "A\x00B", "A\tB", "A\x7fB", "A\x85B", "A\u200bB", "\ufeffA"]
)
def test_a_code_with_a_control_or_invisible_character_is_refused(code: str) -> None:
    assert [v.field for v in code_violations({"service.code": code})] == ["service.code"]


@pytest.mark.parametrize("code", ["ROP-VISA-RENEW", "DA-NIZ-0001", "ROP VISA", "خدمة-١"])
def test_a_printable_code_passes(code: str) -> None:
    assert code_violations({"service.code": code}) == []


def test_a_name_with_a_control_character_or_showing_nothing_is_refused() -> None:
    names = {"a": "Abraj\nCentre", "b": "\u200f", "c": "\u200b \u2060", "d": "", "e": "x\u2029y"}
    assert name_violations(names) == [
        Violation("a", "must not contain control characters"),
        Violation("b", "is required"),
        Violation("c", "is required"),
        Violation("d", "is required"),
        Violation("e", "must not contain control characters"),
    ]


def test_an_arabic_name_may_join_and_mark_direction_between_its_letters() -> None:
    assert name_violations({"name_ar": "مركز\u200cأبراج \u200fالشرق"}) == []
    assert visible("\u200fا")
    assert not visible("\u200f \u200e")


@pytest.mark.parametrize(
    "name",
    ["\u3164", "\u2800", "\u115f", "\u034f", "\u0301", "\u0651", "\u3164\u200f \u0651"],
)
def test_a_name_of_blank_fillers_or_lone_combining_marks_shows_nothing(name: str) -> None:
    assert name_violations({"name": name}) == [Violation("name", "is required")]


@pytest.mark.parametrize("name", ["x\u202e", "abc\u202dxyz\u202c", "a\u2067b\u2069", "\u202aA"])
def test_a_name_with_a_bidirectional_override_or_isolate_is_refused(name: str) -> None:
    assert name_violations({"name": name}) == [
        Violation("name", "must not contain control characters")
    ]


def test_free_text_may_be_empty_but_holds_no_control_character() -> None:
    texts = {"phone": "", "email": "a@b\nlicence_status: active", "address": "\x1b[2J", "x": "ok"}
    assert text_violations(texts) == [
        Violation("email", "must not contain control characters"),
        Violation("address", "must not contain control characters"),
    ]
