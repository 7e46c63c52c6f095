"""Time-sortable identifiers: 48-bit millisecond time + 80 random bits, Crockford base32."""

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of digits, by the 10 bits they encode: an id is 13 lookups, not 26 (ids are made
# twice per submission on intake's hot path).
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_PAIR_SHIFTS = range(120, -1, -10)


def new_id(now_ms: int | None = None) -> str:
    """A 26-character id that sorts by creation time (ULID layout)."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    return id_of(millis, secrets.randbits(80))


def first_id(now_ms: int) -> str:
    """The smallest id of millisecond now_ms: ids of earlier milliseconds sort before it, ids of
    now_ms and later at or after it."""
    return id_of(now_ms, 0)


def id_of(now_ms: int, entropy: int) -> str:
    """The id of millisecond now_ms with these 80 low bits (random, or derived from a key)."""
    value = (now_ms << 80) | entropy
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def is_id(text: str) -> bool:
    """Whether text is laid out as new_id makes ids: 26 digits of its alphabet."""
    return len(text) == 26 and all(char in _ALPHABET for char in text)


def id_time_ms(identifier: str) -> int:
    """The creation time in milliseconds encoded in an id from new_id."""
    value = 0
    for char in identifier[:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value
