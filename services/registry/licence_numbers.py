"""One spelling of each licence number, so that numbers which look alike are one licence.

A clerk may type a number with Arabic-Indic digits (U+0660..U+0669), a fullwidth keyboard's
letters (U+FF21..), or a dash from a word processor (U+2010..U+2015); each is the same licence
as DA-NIZ-0001 and must meet the unique index as that. A number is kept in its canonical form:
compatibility forms folded (NFKC), every decimal digit as its ASCII digit, dashes as "-", upper
case. What is then left beyond Latin letters, digits, "-" and "/" (a Cyrillic letter that looks
like a Latin one, an accent, an inner space) is refused rather than kept as a number that looks
like another.
"""

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
