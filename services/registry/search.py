"""Name search: one normal form for Arabic and English names and for the queries against them.

Arabic is written with optional diacritics and several interchangeable letter forms
(hamza carriers, taa marbuta, alef maqsura), so "ابراج الشرق" must find "أبراج الشرق".
Names and queries both pass through `normalise`, and the query becomes an escaped
substring pattern over the stored normal form. A letter may also arrive decomposed (alef and a
combining hamza, as NFD text from some keyboards and systems holds "أ") or as a presentation
form ("ﻷ", fullwidth Latin): both are composed first (NFKC), so they fold as the plain letters.
"""

import re
import unicodedata

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
# Tashkeel (fathatan .. sukun) and the other Arabic combining marks (maddah, a hamza above or
# below left over once composed, ...), superscript alef and tatweel carry no letter of their own.
_MARKS = re.compile("[\u064b-\u065f\u0670\u0640]")
# Nor does any format character a name may hold: the joiners and direction marks of Arabic
# text (ZWNJ, ZWJ, LRM, RLM, ALM), and the zero-width space, soft hyphen, word joiner or byte
# order mark that editors and word processors slip in ("Ab\u00adraj" shows as "Abraj").
_FORMAT = "Cf"
_SPACES = re.compile(r"\s+")
# Joins the names so that a query never matches across the end of one name.
_NAME_SEPARATOR = "\n"


def normalise(text: str) -> str:
    """Compose (NFKC), fold letter forms, drop diacritics, tatweel and format characters
    (joiners, direction marks, zero-width spaces), lower-case, and collapse spaces."""
    composed = unicodedata.normalize("NFKC", text)
    shown = "".join(c for c in composed if unicodedata.category(c) != _FORMAT)
    folded = _MARKS.sub("", shown).translate(_LETTERS).casefold()
    return _SPACES.sub(" ", folded).strip()


def search_text(*names: str) -> str:
    """What a centre document stores for name search: every name in normal form."""
    return _NAME_SEPARATOR.join(normalise(name) for name in names)


def query_pattern(query: str) -> str | None:
    """A regular expression matching the query as a substring; None for an empty query."""
    normal = normalise(query)
    return re.escape(normal) if normal else None
