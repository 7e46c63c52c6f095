"""Name search: one normal form for Arabic and English names and for the queries against them.

Arabic is written with optional diacritics and several interchangeable letter forms
(hamza carriers, taa marbuta, alef maqsura), so "ابراج الشرق" must find "أبراج الشرق".
Names and queries both pass through `normalise`, and the query becomes an escaped
substring pattern over the stored normal form.
"""

import re

# Hamza and alef variants, taa marbuta and alef maqsura folded to their plain letters.
_LETTERS = str.maketrans(
    {
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "ؤ": "و",
        "ئ": "ي",
        "ة": "ه",
        "ى": "ي",
    }
)
# Tashkeel (fathatan .. sukun), superscript alef and tatweel carry no letter of their own, nor
# do the joiners and direction marks names may hold (ZWNJ, ZWJ, LRM, RLM, ALM).
_MARKS = re.compile("[\u064b-\u0652\u0670\u0640\u200c-\u200f\u061c]")
_SPACES = re.compile(r"\s+")
# Joins the names so that a query never matches across the end of one name.
_NAME_SEPARATOR = "\n"


def normalise(text: str) -> str:
    """Fold letter forms, drop diacritics, tatweel, joiners and direction marks, lower-case,
    and collapse spaces."""
    folded = _MARKS.sub("", text).translate(_LETTERS).casefold()
    return _SPACES.sub(" ", folded).strip()


def search_text(*names: str) -> str:
    """What a centre document stores for name search: every name in normal form."""
    return _NAME_SEPARATOR.join(normalise(name) for name in names)


def query_pattern(query: str) -> str | None:
    """A regular expression matching the query as a substring; None for an empty query."""
    normal = normalise(query)
    return re.escape(normal) if normal else None
