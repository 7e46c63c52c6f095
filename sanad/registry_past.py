"""What a centre or a catalogue service was at a moment, from the changes the registry's watch
streams replay: each value in force from the time of the change that made it (the entity's
update_time) until the next. Metrics places each centre in the years of its reports by it; the
batch worker files migrated history as of its own day by it (where the centre was, the terms
its service had then).

A history is a tuple, oldest first: a copy of the map that holds them is a consistent view, as
a change only ever replaces a centre's or a service's tuple.
"""

import bisect
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

T = TypeVar("T")
# A change recorded without a time, before any other: in force from the beginning.
EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Dated(Generic[T]):
    """A value in force from `since` until the next one."""

    since: datetime
    value: T


def _itself(value: T) -> Hashable:
    return value


def followed_by(
    history: Sequence[Dated[T]],
    since: datetime | None,
    value: T,
    key: Callable[[T], Hashable] = _itself,
) -> tuple[Dated[T], ...]:
    """The history with value in force from since; the same history when value's key is the
    last one's (a change the registry replays, or one of another field). A change with no time,
    or dated before the last (a replica's clock behind), takes effect from the last."""
    if history and key(history[-1].value) == key(value):
        return tuple(history)
    if history and (since is None or since < history[-1].since):
        since = history[-1].since
    return (*history, Dated(since or EARLIEST, value))


def in_force(history: Sequence[Dated[T]], moment: datetime, *, before: bool = False) -> T | None:
    """The value in force at moment (with before, just before it: an end that is exclusive):
    the last one from moment or earlier; the first when moment precedes them all (before the
    registry's first record, it is the best known); None for no history."""
    if not history:
        return None
    times = [entry.since for entry in history]
    position = (bisect.bisect_left if before else bisect.bisect_right)(times, moment) - 1
    return history[max(position, 0)].value
