"""Name search normal form: Arabic letter forms and diacritics fold, English ignores case."""

import re
import unicodedata

import pytest

from services.registry.search import normalise, query_pattern, search_text


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("أبراج", "ابراج"),
        ("إسلام", "اسلام"),
        ("آمنة", "امنه"),
        ("ٱلشرق", "الشرق"),
        ("مؤسسة", "موسسه"),
        ("رئيس", "رييس"),
        ("مكتبة", "مكتبه"),
        ("مصطفى", "مصطفي"),
        ("مَرْكَزُ", "مركز"),
        ("سـنـد", "سند"),
        ("  مركز   سند  ", "مركز سند"),
        ("Abraj AL Sharq", "abraj al sharq"),
        # Joiners and direction marks, which names may hold, show no letter: a query of the
        # visible text finds the name.
        ("مركز\u200f الشرق", "مركز الشرق"),
        ("مركز\u200cسند", "مركزسند"),
        ("\u061cمركز\u200e", "مركز"),
    ],
)
def test_a_name_is_folded_to_its_normal_form(written: str, normal: str) -> None:
    assert normalise(written) == normal


def test_a_query_without_hamza_finds_a_name_written_with_it() -> None:
    stored = search_text("مركز أبراج الشرق", "Abraj Al Sharq Centre")
    pattern = query_pattern("ابراج الشرق")
    assert pattern is not None
    assert re.search(pattern, stored)


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        # Decomposed (NFD), as some keyboards and systems send Arabic: alef and a combining
        # hamza or maddah is the composed letter, and folds as it does.
        ("\u0627\u0654\u0628\u0631\u0627\u062c", "ابراج"),
        ("\u0627\u0655\u0633\u0644\u0627\u0645", "اسلام"),
        ("\u0627\u0653\u0645\u0646\u0629", "امنه"),
        ("\u0645\u0648\u0654\u0633\u0633\u0629", "موسسه"),
        # Presentation forms and fullwidth Latin are the letters they draw.
        ("\ufe83\ufe91\ufeae\ufe8d\ufe9d", "ابراج"),
        ("\ufefb", "لا"),
        ("\uff21\uff42\uff52\uff41\uff4a", "abraj"),
    ],
)
def test_a_decomposed_or_presentation_form_name_folds_as_its_plain_letters(
    written: str, normal: str
) -> None:
    assert normalise(written) == normal


def test_a_query_finds_a_name_stored_decomposed_and_the_other_way_round() -> None:
    decomposed = unicodedata.normalize("NFD", "مركز أبراج الشرق")
    for stored, query in (
        (decomposed, "أبراج"),
        (decomposed, "ابراج"),
        ("مركز أبراج الشرق", unicodedata.normalize("NFD", "أبراج")),
    ):
        pattern = query_pattern(query)
        assert pattern is not None
        assert re.search(pattern, search_text(stored, "Abraj")), (stored, query)


@pytest.mark.parametrize(
    "written",
    ["Ab\u00adraj", "Ab\u200braj", "\ufeffAbraj", "Ab\u2060raj", "Abraj\u200b"],
)
def test_a_name_holding_an_invisible_format_character_is_found_by_what_it_shows(
    written: str,
) -> None:
    # Soft hyphens, zero-width spaces, word joiners and byte order marks come from editors and
    # word processors; names may hold them (they are no control characters), and show "Abraj".
    pattern = query_pattern("abraj")
    assert pattern is not None
    assert re.search(pattern, search_text("مركز", written))


def test_an_arabic_name_holding_a_zero_width_space_is_found_by_what_it_shows() -> None:
    pattern = query_pattern("ابراج الشرق")
    assert pattern is not None
    assert re.search(pattern, search_text("مركز أبر\u200bاج الشرق", "Abraj"))


def test_an_english_query_ignores_case() -> None:
    pattern = query_pattern("SHARQ centre")
    assert pattern is not None
    assert re.search(pattern, search_text("مركز", "Abraj Al Sharq Centre"))


def test_a_query_never_matches_across_the_arabic_and_english_names() -> None:
    pattern = query_pattern("الشرق abraj")
    assert pattern is not None
    assert not re.search(pattern, search_text("أبراج الشرق", "Abraj"))


def test_regular_expression_characters_in_a_query_are_taken_literally() -> None:
    pattern = query_pattern("a.c (x")
    assert pattern is not None
    assert re.search(pattern, "a.c (x)")
    assert not re.search(pattern, "abc (x)")


def test_an_empty_or_blank_query_matches_everything() -> None:
    assert query_pattern("") is None
    assert query_pattern("  ـ ") is None
