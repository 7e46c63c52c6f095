"""The award score is transparent: every rank can be recomputed from the returned components."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.metrics import award
from services.metrics.domain import CenterFacts, sum_rollups

WEIGHTS = award.Weights(speed=0.35, quality=0.25, productivity=0.25, satisfaction=0.15)
REFS = award.References(median_ceiling_hours=72.0, productivity_target_per_staff=800.0)


def facts(cid: str, staff: int = 2) -> CenterFacts:
    return CenterFacts(cid, "", "", "DA-NIZ", staff)


def test_components_follow_the_documented_formula() -> None:
    stats = sum_rollups(
        [
            {
                "completed": 800,
                "rejected": 200,
                "completed_within_sla": 600,
                "ratings": 100,
                "rating_sum": 400,
                "completion_hist": {"le_3600": 800},
            }
        ]
    )
    c = award.components_of(stats, omani_staff=2, references=REFS)
    assert c.within_sla_share == pytest.approx(0.75)
    assert c.median_completion_hours == pytest.approx(0.75)  # half-way through (30 min, 1 h]
    assert c.speed_score == pytest.approx((0.75 + (1 - 0.75 / 72)) / 2)
    assert c.rejection_rate == pytest.approx(0.2)
    assert c.quality_score == pytest.approx(0.8)
    assert c.completed_per_omani_staff == pytest.approx(400.0)
    assert c.productivity_score == pytest.approx(0.5)
    assert c.mean_rating == pytest.approx(4.0)
    assert c.satisfaction_score == pytest.approx(0.75)
    expected = 100 * (0.35 * c.speed_score + 0.25 * 0.8 + 0.25 * 0.5 + 0.15 * 0.75)
    assert award.score_of(c, WEIGHTS) == pytest.approx(expected, abs=1e-4)


def test_a_centre_with_nothing_finished_scores_zero_not_a_division_error() -> None:
    c = award.components_of(sum_rollups([]), omani_staff=0, references=REFS)
    assert award.score_of(c, WEIGHTS) == 0.0


def random_stats(rng: random.Random) -> dict[str, object]:
    completed = rng.randint(0, 3000)
    return {
        "completed": completed,
        "rejected": rng.randint(0, 200),
        "completed_within_sla": rng.randint(0, completed),
        "ratings": (ratings := rng.randint(0, 500)),
        "rating_sum": ratings * rng.randint(1, 5),
        "completion_hist": {"le_3600": completed // 2, "le_86400": completed - completed // 2},
    }


@given(st.integers(min_value=0, max_value=10_000))
def test_ranks_are_reproducible_from_the_returned_components_and_weights(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 12)
    scored = [(facts(f"C{i:02d}", rng.randint(1, 5)), random_stats(rng)) for i in range(size)]
    entries = award.leaderboard(
        [(f, award.components_of(sum_rollups([s]), f.omani_staff, REFS)) for f, s in scored],
        WEIGHTS,
    )
    # An outside reader holds only the entries: recompute each score and the order.
    for entry in entries:
        c = entry.components
        recomputed = 100 * (
            WEIGHTS.speed * c.speed_score
            + WEIGHTS.quality * c.quality_score
            + WEIGHTS.productivity * c.productivity_score
            + WEIGHTS.satisfaction * c.satisfaction_score
        )
        assert entry.score == pytest.approx(recomputed, abs=1e-4)
    order = sorted(entries, key=lambda e: (-e.score, -e.components.completed, e.center.center_id))
    assert [e.rank for e in order] == list(range(1, len(entries) + 1))
    assert [e.rank for e in entries] == list(range(1, len(entries) + 1))


def test_formula_is_published_in_words() -> None:
    assert "score" in award.FORMULA
    assert "median_ceiling_hours" in award.FORMULA


def one_transaction_at_its_best() -> dict[str, object]:
    """Completed at once, within its SLA, rated 5: every part at its best but productivity."""
    return {
        "completed": 1,
        "completed_within_sla": 1,
        "ratings": 1,
        "rating_sum": 5,
        "completion_hist": {"le_300": 1},
    }


def a_thousand_completed() -> dict[str, object]:
    return {
        "completed": 1000,
        "rejected": 42,
        "completed_within_sla": 850,
        "ratings": 400,
        "rating_sum": 1600,
        "completion_hist": {"le_86400": 400, "le_172800": 600},
    }


def test_a_centre_below_the_minimum_follows_the_ranked_ones_unranked() -> None:
    small, busy = facts("A-SMALL", 1), facts("B-BUSY", 3)
    scored = [
        (small, award.components_of(sum_rollups([one_transaction_at_its_best()]), 1, REFS)),
        (busy, award.components_of(sum_rollups([a_thousand_completed()]), 3, REFS)),
    ]
    unbounded = award.leaderboard(scored, WEIGHTS)
    assert [e.center.center_id for e in unbounded] == ["A-SMALL", "B-BUSY"]  # the flaw
    assert unbounded[0].score > unbounded[1].score

    entries = award.leaderboard(scored, WEIGHTS, min_completed=100)
    assert [(e.center.center_id, e.rank) for e in entries] == [("B-BUSY", 1), ("A-SMALL", 0)]
    assert entries[1].score == unbounded[0].score  # scored alike, only not ranked


def test_the_minimum_is_inclusive_and_the_unranked_keep_the_ranking_order() -> None:
    def centre(cid: str, completed: int, within: int) -> tuple[CenterFacts, award.Components]:
        stats = {"completed": completed, "completed_within_sla": within}
        return facts(cid), award.components_of(sum_rollups([stats]), 2, REFS)

    entries = award.leaderboard(
        [centre("A", 99, 99), centre("B", 100, 50), centre("C", 10, 1), centre("D", 150, 150)],
        WEIGHTS,
        min_completed=100,
    )
    assert [(e.center.center_id, e.rank) for e in entries] == [
        ("D", 1),
        ("B", 2),
        ("A", 0),
        ("C", 0),
    ]
