"""argparse types for whole numbers, each bounded by the protobuf field it is sent in, and for
durations in seconds.

A value the field cannot carry would otherwise fail as protobuf's ValueError when the request
is built; argparse instead names the flag and exits 2, as for any other usage error.
"""

import argparse
import math
import re
from collections.abc import Callable

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# gRPC keeps a deadline as int64 nanoseconds since 1970, full in 2262: a timeout much past
# 7e9 s fails every call at once with DEADLINE_EXCEEDED. 1e9 s (about 31 years) stays clear.
MAX_SECONDS = 1_000_000_000


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number from low to high."""

    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


# For int32 and int64 fields; the services say which values of them they take.
int32 = bounded(INT32_MIN, INT32_MAX)
int64 = bounded(INT64_MIN, INT64_MAX)


def non_negative(text: str) -> int:
    """An argparse type for a revision (an int64) of zero or more."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    if value > INT64_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {INT64_MAX}")
    return value


def positive(text: str) -> int:
    """An argparse type for a count of one or more."""
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type for a duration in seconds: a finite number above zero (nan would never
    end a wait, and inf or nan as a gRPC deadline fails every call at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS} seconds")
    return value


def metadata_text(text: str) -> str:
    """An argparse type for a value sent as gRPC metadata (an identity, a token): printable
    ASCII only, which gRPC otherwise refuses as the call's INTERNAL error."""
    if any(not " " <= character <= "~" for character in text):
        raise argparse.ArgumentTypeError(
            f"{text!a} is not printable ASCII, which gRPC metadata must be"
        )
    return text


def not_empty(text: str) -> str:
    """An argparse type for a value that an empty one (an unset shell variable) must not stand
    for: a dead letter's reason or id to match (it would match every letter without one), a
    request id (the default would be used instead: a new one for a submission, none for a
    status change or cancellation, whose retry would then not answer as the first did)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def target(text: str) -> str:
    """An argparse type for a service's address: HOST:PORT, not empty, and a port that is one
    (gRPC takes 84147 as 18611, another service's, without a word)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be HOST:PORT, not empty")
    port = text.rpartition(":")[2]
    if re.fullmatch(r"[+-]?\d+", port) and not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"port {port[:20]} is not a port (1 to 65535)")
    return text
