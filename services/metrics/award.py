"""The excellence award score: transparent, documented, reproducible from its components; no I/O.

FORMULA is what GetAwardLeaderboard publishes with every ranking: "name = rule" clauses, each rule
an expression over the centre's year (completed, rejected, completed_within_sla, omani_staff,
median_hours, mean_rating), the references and the weights, its edge cases written into it, so a
reader can recompute every score from the returned components. components_of and score_of below
compute exactly these rules (tests/unit/test_metrics_award_formula.py evaluates the published
text against them, edge cases included).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sanad import rollups
from services.metrics.domain import CenterFacts, Stats

RULES = (
    "within_sla_share = completed_within_sla / completed if completed > 0 else 0",
    "median_hours = the median running-clock completion time in hours, interpolated inside its"
    " bucket of the rollup histogram (0 when nothing completed)",
    "speed = (within_sla_share + min(1, max(0, 1 - median_hours / median_ceiling_hours))) / 2"
    " if completed > 0 else 0",
    "rejection_rate = rejected / (completed + rejected) if completed + rejected > 0 else 0",
    "quality = 1 - rejection_rate if completed + rejected > 0 else 0",
    "completed_per_omani_staff = completed / omani_staff if omani_staff > 0 else 0",
    "productivity = min(1, completed_per_omani_staff / productivity_target_per_staff)",
    "satisfaction = min(1, max(0, (mean_rating - 1) / 4)) if mean_rating > 0 else 0",
    "score = round(100 * (w_speed * speed + w_quality * quality"
    " + w_productivity * productivity + w_satisfaction * satisfaction), 4)",
)
FORMULA = (
    "For each centre active in the year: "
    + "; ".join(RULES)
    + ". mean_rating is 0 when not rated. Rank: the centres with completed >= min_completed,"
    " by score descending, ties by more completed, then centre id; the others follow unranked"
    " (rank 0) in the same order."
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


def leaderboard(
    scored: Sequence[tuple[CenterFacts, Components]], weights: Weights, min_completed: int = 0
) -> list[Entry]:
    """Rank the centres that completed at least min_completed by score, then completed, then
    id; the others follow in the same order, unranked (rank 0). Without a minimum a centre with
    one transaction, completed at once and rated 5, outscored one that completed a thousand
    (74.85 against 69.28 by the default weights): its productivity is near 0, every other part
    at its best."""
    rows = [(center, components, score_of(components, weights)) for center, components in scored]
    rows.sort(
        key=lambda row: (
            row[1].completed < min_completed,
            -row[2],
            -row[1].completed,
            row[0].center_id,
        )
    )
    return [
        Entry(
            rank=index + 1 if components.completed >= min_completed else 0,
            center=center,
            score=score,
            components=components,
        )
        for index, (center, components, score) in enumerate(rows)
    ]
