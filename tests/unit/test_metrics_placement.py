"""A centre counts, each year, in one governorate: where its transactions of that year were made."""

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.metrics.domain import CenterFacts
from services.metrics.placement import Member
from tests.unit.metrics_fakes import KNOWN, facts, made, queries

ACTIVE_2020 = (datetime(2020, 1, 1, tzinfo=UTC), "ACTIVE")
PLACED = datetime(2019, 1, 1, tzinfo=UTC)
MARCH_2026 = datetime(2026, 3, 1, tzinfo=UTC)


def ids(members: list[Member]) -> list[str]:
    return [m.center.center_id for m in members]


async def test_a_centre_that_moved_since_keeps_counting_where_it_worked_that_year() -> None:
    # M worked in Nizwa in 2023 and moved to Seeb in 2025; the registry places it in MA now.
    moved = facts("M", "MA-SEB", 4, ACTIVE_2020)
    stayed = facts("S", "DA-BAH", 2, ACTIVE_2020)
    docs = [
        made("2023-04-01", "M", "DA-NIZ", submitted=30, completed=30, fees_baisa=9000),
        made("2023-05-01", "S", "DA-BAH", submitted=10, completed=10, fees_baisa=1000),
        made("2025-06-01", "M", "MA-SEB", submitted=5, completed=5),
    ]
    q = queries(docs, [moved, stayed])
    da, ma = await q.report("DA", 2023), await q.report("MA", 2023)
    assert (da.current.active_centers, da.current.wilayats_with_centers) == (2, 2)
    assert (da.current.omani_staff, da.current.transactions_completed) == (6, 40)
    assert da.current.fees_baisa == 10_000
    assert (ma.current.active_centers, ma.current.omani_staff) == (0, 0)
    assert ma.current.transactions_completed == 0
    da_board = await q.leaderboard("DA", 2023, limit=0)
    assert sorted(e.center.center_id for e in da_board.entries) == ["M", "S"]
    assert (await q.leaderboard("MA", 2023, limit=0)).entries == []
    # In 2025 it worked in Seeb: it counts there, and no longer in Ad Dakhiliyah.
    assert (await q.report("MA", 2025)).current.active_centers == 1
    assert ids((await q.members("DA", 2025, ("submitted", "completed"), False))[0]) == ["S"]


async def test_a_centre_that_moved_during_the_year_counts_once_where_it_worked_most() -> None:
    centre = facts("M", "DA-NIZ", 3, was_in=("MA",))  # back in Nizwa now
    docs = [
        made("2024-02-01", "M", "DA-NIZ", submitted=10, completed=10),
        made("2024-08-01", "M", "MA-MCT", submitted=30, completed=25, rejected=5),
    ]
    q = queries(docs, [centre])
    da, ma = await q.report("DA", 2024), await q.report("MA", 2024)
    assert (da.current.active_centers, da.current.transactions_completed) == (0, 10)
    assert (ma.current.active_centers, ma.current.transactions_completed) == (1, 25)
    assert ma.current.wilayats_with_centers == 1
    assert (await q.leaderboard("DA", 2024, limit=0)).entries == []
    (entry,) = (await q.leaderboard("MA", 2024, limit=0)).entries
    # Ranked on its whole year, wherever each transaction was made.
    assert (entry.components.completed, entry.components.rejected) == (35, 5)


async def test_a_tie_goes_to_where_the_registry_placed_the_centre_when_the_year_ended() -> None:
    docs = [
        made("2024-02-01", "T", "DA-IZK", submitted=10),
        made("2024-08-01", "T", "MA-BAW", submitted=10),
    ]
    for now, there, elsewhere in (("DA-IZK", "DA", "MA"), ("MA-BAW", "MA", "DA")):
        q = queries(docs, [facts("T", now, 1, was_in=("DA", "MA"))])
        assert (await q.report(there, 2024)).current.active_centers == 1
        assert (await q.report(elsewhere, 2024)).current.active_centers == 0


async def test_a_centre_with_no_transactions_that_year_counts_where_it_stood_at_its_end() -> None:
    licensed = facts("L", "MA-SEB", 5, ACTIVE_2020)
    docs = [made("2023-03-01", "L", "DA-NIZ", submitted=2, completed=2)]
    q = queries(docs, [licensed])
    assert (await q.report("MA", 2024)).current.omani_staff == 5
    assert (await q.report("DA", 2024)).current.active_centers == 0
    assert (await q.report("DA", 2023)).current.active_centers == 1


async def test_a_report_reads_other_places_only_for_centres_that_may_have_worked_there() -> None:
    docs = [
        made("2024-02-01", "M", "DA-NIZ", submitted=1),
        made("2024-02-01", "S", "DA-BAH", submitted=1),
        made("2023-02-01", "S", "DA-BAH", submitted=1),
    ]
    centres = [
        facts("M", "MA-SEB", 1, was_in=("DA",)),  # worked in DA in 2024, in MA now
        facts("S", "DA-BAH", 1),  # never moved, worked in DA both years
        facts("I", "DA-IZK", 1),  # never moved, never licensed, no transactions
        facts("L", "DA-ADM", 1, ACTIVE_2020),  # licensed, no transactions in DA
    ]
    q = queries(docs, centres)
    await q.report("DA", 2024)
    calls = q.store.calls  # type: ignore[attr-defined]
    # Per year, the governorate's yearly rows; then, by centre, only M (placed in two
    # governorates, so it may have worked in either) and L (would count here by its licence
    # alone): never S or I, never a daily or monthly read.
    assert sorted(calls, key=str) == [
        ("year_by_place", 2023, "DA", None),
        ("year_by_place", 2023, None, ["L", "M"]),
        ("year_by_place", 2024, "DA", None),
        ("year_by_place", 2024, None, ["L", "M"]),
    ]


async def test_a_licensed_centre_that_worked_elsewhere_counts_there_without_its_history() -> None:
    # The registry places N in Nizwa now; it worked in Seeb that year. Even when the directory
    # did not see it in MA, it is read there before counting here by its licence.
    newcomer = facts("N", "DA-NIZ", 2, ACTIVE_2020)
    q = queries([made("2024-04-01", "N", "MA-SEB", submitted=8, completed=8)], [newcomer])
    assert (await q.report("DA", 2024)).current.active_centers == 0
    assert (await q.report("MA", 2024)).current.active_centers == 1


async def test_moving_a_centre_later_does_not_change_a_past_years_report() -> None:
    # L stood in Bahla all of 2024 with an active licence and no transactions; W worked in
    # Nizwa. In March 2026 the registry moves L to Khasab.
    worker = facts("W", "DA-NIZ", 3, ACTIVE_2020)
    docs = [made("2024-05-01", "W", "DA-NIZ", submitted=10, completed=10)]
    before = queries(docs, [worker, facts("L", "DA-BAH", 5, ACTIVE_2020)])
    moved = facts("L", "MU-KHS", 5, ACTIVE_2020, placed=[(PLACED, "DA-BAH")], moved_at=MARCH_2026)
    after = queries(docs, [worker, moved])

    da_before, da_after = await before.report("DA", 2024), await after.report("DA", 2024)
    assert da_after.current == da_before.current
    assert (da_after.current.active_centers, da_after.current.omani_staff) == (2, 8)
    assert da_after.current.wilayats_with_centers == 2
    assert (await after.report("MU", 2024)).current.active_centers == 0
    assert ids((await after.members("DA", 2024, ("submitted",), False))[0]) == ["L", "W"]
    # From the year it moved in, it counts in Musandam.
    assert (await after.report("MU", 2026)).current.omani_staff == 5
    assert ids((await after.members("DA", 2026, ("submitted",), False))[0]) == ["W"]


async def test_moving_a_centre_back_later_does_not_move_a_tied_year() -> None:
    # T made as many in Izki as in Bawshar in 2024 and ended the year in Bawshar; in 2026 the
    # registry moves it back to Izki. 2024 keeps counting it where it stood when 2024 ended.
    docs = [
        made("2024-02-01", "T", "DA-IZK", submitted=10),
        made("2024-08-01", "T", "MA-BAW", submitted=10),
    ]
    history = [(PLACED, "DA-IZK"), (datetime(2024, 7, 1, tzinfo=UTC), "MA-BAW")]
    back = facts("T", "DA-IZK", 1, placed=history, moved_at=MARCH_2026)
    q = queries(docs, [back])
    assert (await q.report("MA", 2024)).current.active_centers == 1
    assert (await q.report("DA", 2024)).current.active_centers == 0


async def test_a_centre_registered_after_the_year_counts_where_it_was_first_placed() -> None:
    # Registered in 2026 with a licence dated back to 2020 (a migration), then moved at once.
    late = facts("R", "MA-SEB", 2, ACTIVE_2020, placed=[(MARCH_2026, "DA-SAM")],
                 moved_at=datetime(2026, 4, 1, tzinfo=UTC))  # fmt: skip
    q = queries([], [late])
    assert (await q.report("DA", 2024)).current.active_centers == 1
    assert (await q.report("MA", 2024)).current.active_centers == 0


def random_world(seed: int) -> tuple[list[CenterFacts], list[dict[str, object]]]:
    """Centres placed anywhere in DA and MA now, each with transactions made in random places."""
    rng = random.Random(seed)
    wilayats = sorted(KNOWN["DA"] | KNOWN["MA"])
    docs = [
        made(
            f"{rng.choice((2023, 2024))}-0{rng.randint(1, 9)}-01",
            f"C{rng.randrange(10)}",  # C8 and C9 are unknown to the registry
            rng.choice(wilayats),
            submitted=rng.randint(0, 3),
            completed=rng.randint(0, 3),
        )
        for _ in range(rng.randint(0, 25))
    ]
    # The registry's change stream shows every governorate a centre was in: those it worked in.
    centres = [
        facts(
            f"C{i}",
            rng.choice(wilayats),
            rng.randint(0, 5),
            ACTIVE_2020,
            was_in=[str(d["governorate_code"]) for d in docs if d["center_id"] == f"C{i}"],
        )
        for i in range(8)
    ]
    return centres, docs


@given(st.integers(min_value=0, max_value=100_000))
async def test_no_centre_counts_in_two_governorates_and_the_award_ranks_the_report(
    seed: int,
) -> None:
    centres, docs = random_world(seed)
    q = queries(docs, centres)
    for year in (2023, 2024):
        counted: list[str] = []
        for governorate in ("DA", "MA"):
            members, _ = await q.members(governorate, year, ("submitted", "completed"), False)
            report = await q.report(governorate, year)
            board = await q.leaderboard(governorate, year, limit=0)
            assert report.current.active_centers == len(members) == len(board.entries)
            assert sorted(e.center.center_id for e in board.entries) == ids(members)
            counted += ids(members)
        assert len(counted) == len(set(counted))
        # Every centre of the registry is active (licensed since 2020): each counts somewhere.
        assert sorted(counted) == sorted(c.center_id for c in centres)


async def test_a_wilayat_counts_the_centres_that_worked_there_in_the_period() -> None:
    # In March, X only had a February transaction rated and Y one rejected; Z submitted one.
    docs = [
        made("2024-03-02", "X", "DA-NIZ", ratings=1, rating_sum=5),
        made("2024-03-03", "Y", "DA-NIZ", rejected=1),
        made("2024-03-04", "Z", "DA-NIZ", submitted=1),
        made("2024-02-04", "W", "DA-NIZ", submitted=1, completed=1),
    ]
    centres = [facts(c, "DA-NIZ", 1) for c in "WXYZ"]
    centers, stats = await queries(docs, centres).wilayat_stats(
        "DA-NIZ", "2024-03-01", "2024-04-01"
    )
    assert centers == 1
    # The wilayat's counters still hold every event of the period.
    assert (stats.get("ratings"), stats.get("rejected"), stats.get("submitted")) == (1, 1, 1)
