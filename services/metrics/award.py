"""The excellence award score: transparent, documented, reproducible from its components; no I/O.

For each centre active in the year:
  within_sla_share   = completed_within_sla / completed
  median_hours       = median running-clock completion time (from the rollup histogram)
  speed              = (within_sla_share + max(0, 1 - median_hours / median_ceiling_hours)) / 2
  quality            = 1 - rejected / (completed + rejected)
  productivity       = min(1, (completed / omani_staff) / productivity_target_per_staff)
  satisfaction       = (mean_rating - 1) / 4, 0 when not rated
  score              = 100 * (w_speed*speed + w_quality*quality + w_productivity*productivity
                              + w_satisfaction*satisfaction)
Rank: score descending (rounded to 4 decimals), ties by more completed, then centre id.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sanad import rollups
from services.metrics.domain import CenterFacts, Stats

FORMULA = (
    " ".join(__doc__.split("For each centre active in the year:")[1].split()) if __doc__ else ""
)
SCORE_DECIMALS = 4


@dataclass(frozen=True)
class Weights:
    """Weights of the four parts; they sum to 1."""

    speed: float
    quality: float
    productivity: float
    satisfaction: float


@dataclass(frozen=True)
class References:
    """Reference values that map raw components onto 0..1."""

    median_ceiling_hours: float
    productivity_target_per_staff: float


@dataclass(frozen=True)
class Components:
    """Raw figures and the 0..1 scores built from them."""

    completed: int
    rejected: int
    omani_staff: int
    within_sla_share: float
    median_completion_hours: float
    rejection_rate: float
    completed_per_omani_staff: float
    mean_rating: float
    speed_score: float
    quality_score: float
    productivity_score: float
    satisfaction_score: float


@dataclass(frozen=True)
class Entry:
    """One centre on the leaderboard."""

    rank: int
    center: CenterFacts
    score: float
    components: Components


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def components_of(stats: Stats, omani_staff: int, references: References) -> Components:
    """The components of one centre's year."""
    completed, rejected = stats.get(rollups.COMPLETED), stats.get(rollups.REJECTED)
    within = stats.get(rollups.COMPLETED_WITHIN_SLA) / completed if completed else 0.0
    median_hours = stats.median_completion_seconds / 3600.0
    finished = completed + rejected
    rejection = rejected / finished if finished else 0.0
    per_staff = completed / omani_staff if omani_staff > 0 else 0.0
    rating = stats.mean_rating
    median_part = _clamp(1.0 - median_hours / references.median_ceiling_hours) if completed else 0
    return Components(
        completed=completed,
        rejected=rejected,
        omani_staff=omani_staff,
        within_sla_share=within,
        median_completion_hours=median_hours,
        rejection_rate=rejection,
        completed_per_omani_staff=per_staff,
        mean_rating=rating,
        speed_score=(within + median_part) / 2.0,
        quality_score=1.0 - rejection if finished else 0.0,
        productivity_score=_clamp(per_staff / references.productivity_target_per_staff),
        satisfaction_score=_clamp((rating - 1.0) / 4.0) if rating else 0.0,
    )


def score_of(components: Components, weights: Weights) -> float:
    """The weighted score 0..100, rounded so equal inputs always rank equally."""
    total = (
        weights.speed * components.speed_score
        + weights.quality * components.quality_score
        + weights.productivity * components.productivity_score
        + weights.satisfaction * components.satisfaction_score
    )
    return round(100.0 * total, SCORE_DECIMALS)


def leaderboard(scored: Sequence[tuple[CenterFacts, Components]], weights: Weights) -> list[Entry]:
    """Rank centres by score, then completed, then id."""
    rows = [(center, components, score_of(components, weights)) for center, components in scored]
    rows.sort(key=lambda row: (-row[2], -row[1].completed, row[0].center_id))
    return [
        Entry(rank=index + 1, center=center, score=score, components=components)
        for index, (center, components, score) in enumerate(rows)
    ]
