"""Which characters codes, licence numbers, names and free text may hold.

A control character (NUL, a newline, a tab, DEL, C1 controls) or a line or paragraph
separator belongs in no code, name or text (a contact, a reason): it breaks listings, logs and
the CSVs operators export, and MongoDB refuses NUL in a pattern. So does a bidirectional
override, embedding or isolate, which shows the text after it reordered (the "Trojan Source"
trick). An invisible format character (a zero-width space or joiner, a direction mark) makes
two codes that look alike differ, so codes hold none; Arabic names may use joiners and
direction marks between letters, but a name must show something: a letter, digit or sign,
not only spaces, format characters, combining marks or the blank-looking fillers below.
"""

import unicodedata

from sanad.errors import Violation

_CONTROL = frozenset({"Cc", "Zl", "Zp"})
_INVISIBLE = frozenset({"Cf"})
# Combining marks show nothing without a letter to sit on.
_MARKS = frozenset({"Mn", "Mc", "Me"})
# Letters and symbols that are drawn blank: Hangul fillers and the empty braille pattern.
_BLANK = frozenset("ᅟᅠㅤﾠ⠀")
# LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI.
_REORDERING = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
CONTROL = "must not contain control characters"
CONTROL_OR_INVISIBLE = "must not contain control or invisible characters"
BLANK_OR_UNCOMPOSED = (
    "must not contain blank-looking or ignorable characters or spaces other than plain inner ones,"
    " and must be in normalized form (Unicode NFKC)"
)
# The refusals of an id for its characters alone (id_violations).
ID_CHARACTER_RULES = frozenset({CONTROL_OR_INVISIBLE, BLANK_OR_UNCOMPOSED})
# Marks and selectors drawn as nothing, beyond the format characters (Cf) and the fillers above:
# the combining grapheme joiner, Khmer's invisible vowels, Mongolian and other variation
# selectors.
_IGNORABLE = frozenset(
    chr(c)
    for c in (
        0x034F,
        0x17B4,
        0x17B5,
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    )
)
REQUIRED = "is required"


def _categories(text: str) -> set[str]:
    return {unicodedata.category(character) for character in text}


def controlling(character: str) -> bool:
    """Does the character act on a display instead of showing: a control character, a line or
    paragraph separator, or a reordering control? (sanadctl escapes these when it prints.)"""
    return character in _REORDERING or unicodedata.category(character) in _CONTROL


def _controlled(text: str) -> bool:
    """Holds a character that acts on a display (controlling)."""
    return any(controlling(character) for character in text)


def visible(text: str) -> bool:
    """Does the text show anything: a character that is not space, invisible, a combining
    mark on its own, or a blank-looking filler?"""
    return any(
        not c.isspace() and c not in _BLANK and unicodedata.category(c) not in _INVISIBLE | _MARKS
        for c in text
    )


def _plain(text: str) -> bool:
    """Printable ASCII: no control, format, blank-looking or ignorable character, nothing
    that normalizes to anything else, no space but the plain one. What nearly every caller
    sends, judged without a look at each character's Unicode category."""
    return text.isascii() and text.isprintable()


def code_violations(fields: dict[str, str]) -> list[Violation]:
    """Each code or licence number holding a control or invisible character."""
    return [
        Violation(name, CONTROL_OR_INVISIBLE)
        for name, value in fields.items()
        if not _plain(value) and _categories(value) & (_CONTROL | _INVISIBLE)
    ]


def id_violations(fields: dict[str, str]) -> list[Violation]:
    """Each id a caller chooses (a request id) holding what codes may not (code_violations), a
    blank-looking filler or ignorable mark, a space other than a plain one between other
    characters, or text not in NFKC form: "r1", "r1 " and "r1" with a no-break space, an accent
    typed as one character and as two, or an Arabic letter and its presentation form, would be
    different ids that print alike."""
    if all(_plain(value) and value == value.strip() for value in fields.values()):
        return []
    found = code_violations(fields)
    flagged = {violation.field for violation in found}
    for name, value in fields.items():
        spaced = any(c.isspace() and c != " " for c in value) or value != value.strip()
        hidden = any(c in _BLANK or c in _IGNORABLE for c in value)
        normal = unicodedata.is_normalized("NFKC", value)
        if name not in flagged and (spaced or hidden or not normal):
            found.append(Violation(name, BLANK_OR_UNCOMPOSED))
    return found


def name_violations(fields: dict[str, str]) -> list[Violation]:
    """Each required name holding a control character or showing nothing."""
    found: list[Violation] = []
    for name, value in fields.items():
        if _controlled(value):
            found.append(Violation(name, CONTROL))
        elif not visible(value):
            found.append(Violation(name, REQUIRED))
    return found


def text_violations(fields: dict[str, str]) -> list[Violation]:
    """Each free text (which may be empty) holding a control character."""
    return [Violation(name, CONTROL) for name, value in fields.items() if _controlled(value)]
