"""One spelling of each licence number, so that numbers which look alike are one licence.

A clerk may type a number with Arabic-Indic digits (U+0660..U+0669), a fullwidth keyboard's
letters (U+FF21..), or a dash from a word processor (U+2010..U+2015); each is the same licence
as DA-NIZ-0001 and must meet the unique index as that. A number is kept in its canonical form:
compatibility forms folded (NFKC), every decimal digit as its ASCII digit, dashes as "-", upper
case. What is then left beyond Latin letters, digits, "-" and "/" (a Cyrillic letter that looks
like a Latin one, an accent, an inner space) is refused rather than kept as a number that looks
like another.
"""

import re
import string
import unicodedata

from sanad.errors import Violation

_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-")
)
ALLOWED = frozenset(string.ascii_uppercase + string.digits + "-/")
ALLOWED_TEXT = "must hold only Latin letters, digits, '-' and '/' (no spaces)"


def canonical(number: str) -> str:
    """The number as it is kept and compared (surrounding spaces dropped)."""
    folded = unicodedata.normalize("NFKC", number).translate(_DASHES)
    digits = (str(unicodedata.digit(c)) if unicodedata.category(c) == "Nd" else c for c in folded)
    return "".join(digits).strip().upper()


def number_violations(field: str, number: str) -> list[Violation]:
    """A violation when a canonical number holds anything but ALLOWED."""
    return [Violation(field, ALLOWED_TEXT)] if set(number) - ALLOWED else []


def spellings_pattern(number: str) -> str:
    """A regular expression (to be matched case-insensitively) of the spellings of a canonical
    number that canonical() folds to it: what centres registered before numbers were kept in
    one spelling may hold ("da-1", or Arabic-Indic digits), which the unique index, comparing
    exact strings, would not see as the same licence."""
    return "^" + "".join(_spellings(character) for character in number) + "$"


def _spellings(character: str) -> str:
    if character.isdigit():
        value = int(character)
        # ASCII, Arabic-Indic, extended Arabic-Indic (Persian, Urdu) and fullwidth digits.
        return "[" + "".join(chr(zero + value) for zero in (0x30, 0x660, 0x6F0, 0xFF10)) + "]"
    if character in string.ascii_uppercase:
        offset = ord(character) - ord("A")
        return f"[{character}{chr(0xFF21 + offset)}{chr(0xFF41 + offset)}]"
    if character == "-":
        return "[-\u2010-\u2015\u2212\ufe58\ufe63\uff0d]"
    if character == "/":
        return "[/\uff0f]"
    return re.escape(character)
