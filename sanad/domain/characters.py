"""Which characters codes, licence numbers and names may hold.

A control character (NUL, a newline, a tab, DEL, C1 controls) or a line or paragraph
separator belongs in no code or name: it breaks listings, logs and the CSVs operators export,
and MongoDB refuses NUL in a pattern. An invisible format character (a zero-width space or
joiner, a direction mark) makes two codes that look alike differ, so codes hold none; Arabic
names may use joiners and direction marks between letters, but a name must show something.
"""

import unicodedata

from sanad.errors import Violation

_CONTROL = frozenset({"Cc", "Zl", "Zp"})
_INVISIBLE = frozenset({"Cf"})
CONTROL = "must not contain control characters"
CONTROL_OR_INVISIBLE = "must not contain control or invisible characters"
REQUIRED = "is required"


def _categories(text: str) -> set[str]:
    return {unicodedata.category(character) for character in text}


def visible(text: str) -> bool:
    """Does the text show anything: a character that is neither space nor invisible?"""
    return any(not c.isspace() and unicodedata.category(c) not in _INVISIBLE for c in text)


def code_violations(fields: dict[str, str]) -> list[Violation]:
    """Each code or licence number holding a control or invisible character."""
    return [
        Violation(name, CONTROL_OR_INVISIBLE)
        for name, value in fields.items()
        if _categories(value) & (_CONTROL | _INVISIBLE)
    ]


def name_violations(fields: dict[str, str]) -> list[Violation]:
    """Each required name holding a control character or showing nothing."""
    found: list[Violation] = []
    for name, value in fields.items():
        if _categories(value) & _CONTROL:
            found.append(Violation(name, CONTROL))
        elif not visible(value):
            found.append(Violation(name, REQUIRED))
    return found
