"""Statistics arithmetic over rollup counters; no I/O."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COUNTERS = (
    "submitted",
    "recorded",
    "completed",
    "rejected",
    "cancelled",
    "fees_baisa",
    "completed_within_sla",
    "completion_seconds_sum",
    "ratings",
    "rating_sum",
)


@dataclass(frozen=True)
class Stats:
    """Summed counters with derived means."""

    counts: Mapping[str, int]

    @property
    def mean_completion_seconds(self) -> float:
        done = self.counts.get("completed", 0)
        return self.counts.get("completion_seconds_sum", 0) / done if done else 0.0

    @property
    def mean_rating(self) -> float:
        given = self.counts.get("ratings", 0)
        return self.counts.get("rating_sum", 0) / given if given else 0.0


def sum_rollups(rollups: Iterable[Mapping[str, Any]]) -> Stats:
    """Add the counters of many rollup documents."""
    totals = dict.fromkeys(COUNTERS, 0)
    for rollup in rollups:
        for name in COUNTERS:
            totals[name] += int(rollup.get(name, 0))
    return Stats(totals)
