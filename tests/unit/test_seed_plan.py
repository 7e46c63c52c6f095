"""The demo dataset reproduces the published Ad Dakhiliyah figures and explains its winners."""

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from sanad.domain.transactions import Status, can_change
from sanad.seed.catalogue import SERVICES
from sanad.seed.history import allocate, transactions
from sanad.seed.plan import PUBLISHED_COMPLETED, SeedPlan
from sanad.v1 import common_pb2
from services.metrics import award
from services.metrics.domain import sum_rollups
from services.metrics.settings import MetricsSettings

PLAN = SeedPlan(seed=7)


def test_the_governorate_has_74_centres_in_9_wilayats_with_183_omani_staff() -> None:
    centres = PLAN.centres()
    assert len(centres) == 74
    assert len({c.wilayat_code for c in centres}) == 9
    assert sum(c.omani_staff for c in centres) == 183
    assert len({c.licence_number for c in centres}) == 74
    assert len({c.name_ar for c in centres}) == 74
    assert all(1 <= c.omani_staff <= c.total_staff for c in centres)


def test_2024_completes_exactly_the_published_figure_and_2023_fewer() -> None:
    by_year = {year: PLAN.completed(year) for year in PLAN.years}
    assert sum(by_year[2024].values()) == 74_658 == PUBLISHED_COMPLETED[2024]
    assert sum(by_year[2023].values()) < 74_658
    assert len(by_year[2024]) == 74
    # Six centres opened in 2024; every wilayat already had centres in 2023.
    opened = [c for c in PLAN.centres() if c.opened_in_last_year]
    assert len(by_year[2023]) == 74 - len(opened) == 68
    in_2023 = {c.wilayat_code for c in PLAN.centres() if c.index in by_year[2023]}
    assert len(in_2023) == 9


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data() -> None:
    fees = {s.code: s.fee_baisa for s in SERVICES}
    centre = PLAN.centres()[5]
    first = [t.SerializeToString() for t in transactions(centre, 2024, 50, 7, fees)]
    again = [t.SerializeToString() for t in transactions(centre, 2024, 50, 7, fees)]
    other = [t.SerializeToString() for t in transactions(centre, 2024, 50, 8, fees)]
    assert first == again
    assert first != other
    assert SeedPlan(seed=7).completed(2024) == PLAN.completed(2024)


def test_every_history_is_legal_and_stays_inside_its_year() -> None:
    fees = {s.code: s.fee_baisa for s in SERVICES}
    offered = {s.code for s in SERVICES}
    for centre in PLAN.centres()[:6]:
        for item in transactions(centre, 2024, 300, 7, fees):
            status, moment = Status.RECORDED, item.submit_time.ToDatetime(tzinfo=UTC)
            assert moment >= datetime(2024, 1, 1, tzinfo=UTC)
            for change in item.history:
                new = Status(
                    common_pb2.TransactionStatus.Name(change.status).removeprefix(
                        "TRANSACTION_STATUS_"
                    )
                )
                assert can_change(status, new), (status, new)
                assert change.time.ToDatetime(tzinfo=UTC) >= moment
                status, moment = new, change.time.ToDatetime(tzinfo=UTC)
            assert moment < datetime(2025, 1, 1, tzinfo=UTC)
            assert item.transaction.fee_baisa == fees[item.transaction.service_code]
            assert item.transaction.service_code in offered
            assert item.transaction.beneficiary_civil_number.isdigit()
            assert 0 <= item.rating <= 5


def test_batches_are_per_centre_with_unique_ids_and_request_ids() -> None:
    small = SeedPlan(seed=7, scale=0.01)
    ids = {c.index: f"C{c.index:02d}" for c in small.centres()}
    batches = list(small.batches(ids, {}, batch_size=100))
    assert len({b.batch_id for b in batches}) == len(batches)
    items = [i for b in batches for i in b.history_items]
    assert all(i.transaction.center_id == b.center_id for b in batches for i in b.history_items)
    assert len({i.transaction.request_id for i in items}) == len(items)
    completed = Counter(
        i.submit_time.ToDatetime().year
        for i in items
        if i.history[-1].status == common_pb2.TRANSACTION_STATUS_COMPLETED
    )
    assert (
        completed == {2023: small.target(2023), 2024: small.target(2024)} == {2023: 662, 2024: 747}
    )


def test_allocation_sums_exactly_and_follows_the_weights() -> None:
    assert allocate(10, [1, 1, 1]) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(allocate(74_658, [0.3, 1.7, 2.2, 0.9])) == 74_658


@pytest.mark.parametrize("year", [2024])
def test_the_named_winners_get_the_best_award_components(year: int) -> None:
    """Score the generated data the way the metrics service does, from simulated rollups."""
    fees = {s.code: s.fee_baisa for s in SERVICES}
    sla = {s.code: s.sla_hours * 3600 for s in SERVICES}
    weights = award.Weights(0.35, 0.25, 0.25, 0.15)
    refs = award.References(72.0, 800.0)
    small = SeedPlan(seed=7, scale=0.25)
    counts = small.completed(year)
    scored = []
    for centre in small.centres():
        docs = [
            _rollup_of(item, sla)
            for item in transactions(centre, year, counts[centre.index], 7, fees)
        ]
        components = award.components_of(sum_rollups(docs), centre.omani_staff, refs)
        scored.append((_facts(centre), components))
    board = award.leaderboard(scored, weights)
    assert [e.center.name_ar for e in board[:3]] == [
        "مركز أبراج الشرق",
        "مركز جرنان للخدمات المتميزة",
        "مركز الوسام للطباعة وتخليص المعاملات",
    ]


def _facts(centre: object) -> object:
    from services.metrics.domain import CenterFacts  # noqa: PLC0415

    c = centre
    return CenterFacts(c.licence_number, c.name_ar, c.name_en, c.wilayat_code, c.omani_staff)  # type: ignore[attr-defined]


def _rollup_of(item: object, sla: dict[str, int]) -> dict[str, object]:
    """What the rollup contract counts for one finished history (running clock excludes pauses)."""
    from sanad import rollups  # noqa: PLC0415

    history = item.history  # type: ignore[attr-defined]
    final = history[-1]
    start = item.submit_time.ToSeconds()  # type: ignore[attr-defined]
    paused = 0
    for before, after in itertools.pairwise(history):
        if before.status == common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS:
            paused += after.time.ToSeconds() - before.time.ToSeconds()
    running = final.time.ToSeconds() - start - paused
    if final.status == common_pb2.TRANSACTION_STATUS_COMPLETED:
        code = item.transaction.service_code  # type: ignore[attr-defined]
        return {
            "completed": 1,
            "completed_within_sla": int(running <= sla[code]),
            "completion_seconds_sum": running,
            "completion_hist": {rollups.bucket_of(running): 1},
            "ratings": int(item.rating > 0),  # type: ignore[attr-defined]
            "rating_sum": item.rating,  # type: ignore[attr-defined]
        }
    if final.status == common_pb2.TRANSACTION_STATUS_REJECTED:
        return {"rejected": 1}
    return {"cancelled": 1}


def test_the_first_batch_is_the_largest_centre_years_and_holds_other_items_per_batch_size() -> None:
    """A seed run again with another --batch-size sends first a batch id it used before for
    other items, which the batch worker refuses before anything is stored twice."""
    small = SeedPlan(seed=7, scale=0.01)
    ids = {c.index: f"C{c.index:02d}" for c in small.centres()}
    whole = list(small.batches(ids, {}, batch_size=10_000))
    sizes = [len(b.history_items) for b in whole]
    first = {size: next(iter(small.batches(ids, {}, batch_size=size))) for size in (5, 7)}

    assert sizes[0] == max(sizes)
    assert first[5].batch_id == first[7].batch_id == whole[0].batch_id
    assert len(first[5].history_items) == 5
    assert first[5].SerializeToString() != first[7].SerializeToString()
    assert first[7].history_items[:5] == first[5].history_items


def test_the_first_batch_at_another_scale_holds_other_items_under_the_same_batch_id() -> None:
    """The first items of a centre-year are the same at every scale: without the dataset in
    their request ids, a run at another scale would be taken for a resend of the first batch,
    and would then store the items the earlier scale did not have beside its own."""
    full, half = SeedPlan(seed=7), SeedPlan(seed=7, scale=0.5)
    ids = {c.index: f"C{c.index:02d}" for c in full.centres()}
    first = [next(iter(plan.batches(ids, {}, batch_size=5))) for plan in (full, half)]

    assert first[0].batch_id == first[1].batch_id
    assert first[0].SerializeToString() != first[1].SerializeToString()
    assert all(not i.transaction.request_id.startswith("seed-7-x") for i in first[0].history_items)
    assert all(i.transaction.request_id.startswith("seed-7-x0.5-") for i in first[1].history_items)


def test_every_seeded_centre_completes_the_awards_minimum_so_the_demo_ranks_them_all() -> None:
    minimum = MetricsSettings().award_min_completed
    for year in (2023, 2024):
        assert min(SeedPlan().completed(year).values()) >= minimum
