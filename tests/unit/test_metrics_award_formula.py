"""The published award formula is what the code computes, edge cases included: a reader who
evaluates its rules gets every component and score the leaderboard returns."""

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.metrics import award
from services.metrics.domain import sum_rollups
from tests.unit.metrics_fakes import REFS, WEIGHTS

# The clause of the published text that names each returned figure.
RETURNED = {
    "within_sla_share": "within_sla_share",
    "speed": "speed_score",
    "rejection_rate": "rejection_rate",
    "quality": "quality_score",
    "completed_per_omani_staff": "completed_per_omani_staff",
    "productivity": "productivity_score",
    "satisfaction": "satisfaction_score",
}


def published_rules() -> list[tuple[str, str]]:
    """The "name = rule" clauses of the formula the leaderboard returns, in order."""
    body = award.FORMULA.split(": ", 1)[1].split(". ", 1)[0]
    return [tuple(clause.split(" = ", 1)) for clause in body.split("; ")]  # type: ignore[misc]


def by_the_text(facts: dict[str, Any]) -> dict[str, float]:
    """Every figure the formula defines, evaluated from the text alone. median_hours is the one
    rule in words (a histogram median); the reader takes it from the returned components."""
    names: dict[str, Any] = {"min": min, "max": max, "round": round, **facts}
    for name, rule in published_rules():
        if name != "median_hours":
            names[name] = eval(rule, {"__builtins__": {}}, names)
    return names


def check(year: dict[str, Any], omani_staff: int) -> None:
    stats = sum_rollups([year])
    components = award.components_of(stats, omani_staff, REFS)
    text = by_the_text(
        {
            "completed": stats.get("completed"),
            "rejected": stats.get("rejected"),
            "completed_within_sla": stats.get("completed_within_sla"),
            "omani_staff": omani_staff,
            "median_hours": components.median_completion_hours,
            "mean_rating": stats.mean_rating,
            "median_ceiling_hours": REFS.median_ceiling_hours,
            "productivity_target_per_staff": REFS.productivity_target_per_staff,
            "w_speed": WEIGHTS.speed,
            "w_quality": WEIGHTS.quality,
            "w_productivity": WEIGHTS.productivity,
            "w_satisfaction": WEIGHTS.satisfaction,
        }
    )
    for name, field in RETURNED.items():
        assert text[name] == pytest.approx(getattr(components, field)), name
    assert text["score"] == award.score_of(components, WEIGHTS)


def test_the_formula_defines_every_figure_it_returns() -> None:
    assert {name for name, _ in published_rules()} == {*RETURNED, "median_hours", "score"}


@pytest.mark.parametrize(
    ("year", "omani_staff"),
    [
        ({}, 0),  # nothing at all
        ({"rejected": 5, "submitted": 5}, 2),  # nothing completed: speed 0, not 0.5
        ({"submitted": 3}, 2),  # nothing finished: quality 0
        ({"completed": 40, "completion_hist": {"le_3600": 40}}, 0),  # no Omani staff
        ({"completed": 8, "completion_hist": {"le_inf": 8}}, 1),  # median past the ceiling
        ({"completed": 2_000, "completion_hist": {"le_900": 2_000}}, 1),  # productivity capped
        ({"completed": 4, "ratings": 2, "rating_sum": 10}, 1),  # rated, no histogram
    ],
)
def test_the_edge_cases_follow_from_the_published_text(
    year: dict[str, Any], omani_staff: int
) -> None:
    check(year, omani_staff)


def test_the_text_names_the_edge_cases() -> None:
    rules = dict(published_rules())
    assert rules["speed"].endswith("if completed > 0 else 0")
    assert rules["quality"].endswith("if completed + rejected > 0 else 0")
    assert rules["completed_per_omani_staff"].endswith("if omani_staff > 0 else 0")
    assert "0 when not rated" in award.FORMULA


@given(st.integers(min_value=0, max_value=100_000))
def test_random_years_follow_from_the_published_text(seed: int) -> None:
    rng = random.Random(seed)
    completed = rng.choice((0, rng.randint(1, 3_000)))
    buckets = ("le_900", "le_7200", "le_86400", "le_259200", "le_inf")
    hist: dict[str, int] = {}
    for _ in range(completed):
        bucket = rng.choice(buckets)
        hist[bucket] = hist.get(bucket, 0) + 1
    ratings = rng.choice((0, rng.randint(1, 50)))
    year = {
        "completed": completed,
        "rejected": rng.choice((0, rng.randint(1, 300))),
        "completed_within_sla": rng.randint(0, completed),
        "ratings": ratings,
        "rating_sum": sum(rng.randint(1, 5) for _ in range(ratings)),
        "completion_hist": hist,
    }
    check(year, rng.choice((0, rng.randint(1, 6))))
