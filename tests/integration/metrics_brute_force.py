"""The governorate report and the award leaderboard worked out by brute force from a scenario's
transactions, by the rules the proto and the README publish (centres here never move)."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sanad.domain.transactions import Status
from sanad.rollups import COMPLETION_BOUNDS_S
from tests.integration.metrics_scenario import Centre, Transaction, stats

WEIGHTS = {"speed": 0.35, "quality": 0.25, "productivity": 0.25, "satisfaction": 0.15}
MEDIAN_CEILING_HOURS = 72.0
TARGET_PER_STAFF = 800.0


def year_days(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def own(centre: Centre, chosen: list[Transaction]) -> list[Transaction]:
    return [t for t in chosen if t.centre.center_id == centre.center_id]


def placed_at_end(centre: Centre, year: int) -> tuple[str, str]:
    """Where the registry placed the centre when the year ended: every centre here was
    registered (and moved) this year, so earlier years read where it was first placed."""
    wilayat = centre.wilayat_code
    if year == datetime.now(UTC).year and centre.moved_to:
        wilayat = centre.moved_to
    return wilayat.split("-")[0], wilayat


def home(centre: Centre, year: int, chosen: list[Transaction]) -> tuple[str, str]:
    """Where it counts: the place most of its transactions of the year (submitted plus
    completed) were made, a tie to where it was at the year's end, then the lower codes."""
    first, last = year_days(year)
    made: Counter[tuple[str, str]] = Counter()
    for t in own(centre, chosen):
        made[t.place] += int(first <= t.submit_time.date() < last)
        finish = t.finish_time
        done = t.status is Status.COMPLETED and finish is not None
        made[t.place] += int(done and first <= finish.date() < last)  # type: ignore[union-attr]
    end = placed_at_end(centre, year)
    worked = [place for place, count in made.items() if count]
    if not worked:
        return end
    return min(worked, key=lambda place: (-made[place], place != end, place))


def members(
    governorate: str,
    year: int,
    centres: list[Centre],
    chosen: list[Transaction],
    licensed: set[str],
) -> list[tuple[Centre, tuple[str, str]]]:
    """The centres active in the year (worked in it anywhere, or licensed ACTIVE during it:
    licences here were all activated this year) that count in the governorate, with their
    place."""
    found = []
    for centre in centres:
        place = home(centre, year, chosen)
        figures = stats(own(centre, chosen), *year_days(year))
        worked = figures["submitted"] + figures["completed"] > 0
        licence = centre.center_id in licensed and year == datetime.now(UTC).year
        if place[0] == governorate and (worked or licence):
            found.append((centre, place))
    return found


@dataclass(frozen=True)
class Figures:
    active_centers: int
    wilayats_with_centers: int
    transactions_completed: int
    omani_staff: int
    fees_baisa: int


def figures(
    governorate: str,
    year: int,
    centres: list[Centre],
    chosen: list[Transaction],
    licensed: set[str],
) -> Figures:
    active = members(governorate, year, centres, chosen, licensed)
    made_here = [t for t in chosen if t.place[0] == governorate]
    totals = stats(made_here, *year_days(year))
    return Figures(
        active_centers=len(active),
        wilayats_with_centers=len({place[1] for _, place in active}),
        transactions_completed=int(totals["completed"]),
        omani_staff=sum(c.omani_staff for c, _ in active),
        fees_baisa=int(totals["fees_baisa"]),
    )


def compared_completions(governorate: str, year: int, chosen: list[Transaction]) -> int:
    """Completions of the year before that the change compares with: all of it for a year that is
    over, up to and including today's date for the year in progress."""
    today = datetime.now(UTC).date()
    end = date(year, 1, 1)
    if today.year == year:
        end = date(year - 1, today.month, min(today.day, 28) if today.month == 2 else today.day)
        end += timedelta(days=1)
    made_here = [t for t in chosen if t.place[0] == governorate]
    return int(stats(made_here, date(year - 1, 1, 1), end)["completed"])


def median_hours(elapsed: list[int]) -> float:
    """The median interpolated inside its histogram bucket, as the formula says."""
    if not elapsed:
        return 0.0
    counts = [0] * (len(COMPLETION_BOUNDS_S) + 1)
    for seconds in elapsed:
        index = next((i for i, b in enumerate(COMPLETION_BOUNDS_S) if seconds <= b), -1)
        counts[index] += 1
    rank, seen, lower = 0.5 * len(elapsed), 0, 0.0
    for bound, count in zip(COMPLETION_BOUNDS_S, counts, strict=False):
        if count and seen + count >= rank:
            return (lower + (bound - lower) * (rank - seen) / count) / 3600
        seen, lower = seen + count, float(bound)
    return COMPLETION_BOUNDS_S[-1] / 3600


def score(centre: Centre, year: int, chosen: list[Transaction]) -> tuple[float, int, int]:
    """(score, completed, rejected) of the centre's year, every transaction wherever made."""
    first, last = year_days(year)
    mine = own(centre, chosen)
    done = [
        t
        for t in mine
        if t.status is Status.COMPLETED and t.finish_time and first <= t.finish_time.date() < last
    ]
    year_stats = stats(mine, first, last)
    completed, rejected = len(done), int(year_stats["rejected"])
    within = sum(t.within_sla for t in done) / completed if completed else 0.0
    median_part = min(
        1, max(0, 1 - median_hours([t.elapsed_seconds for t in done]) / MEDIAN_CEILING_HOURS)
    )
    speed = (within + median_part) / 2 if completed else 0.0
    finished = completed + rejected
    quality = 1 - rejected / finished if finished else 0.0
    per_staff = completed / centre.omani_staff if centre.omani_staff else 0.0
    productivity = min(1.0, per_staff / TARGET_PER_STAFF)
    rating = float(year_stats["mean_rating"])
    satisfaction = min(1.0, max(0.0, (rating - 1) / 4)) if rating else 0.0
    total = (
        WEIGHTS["speed"] * speed
        + WEIGHTS["quality"] * quality
        + WEIGHTS["productivity"] * productivity
        + WEIGHTS["satisfaction"] * satisfaction
    )
    return round(100 * total, 4), completed, rejected


def leaderboard(
    governorate: str,
    year: int,
    centres: list[Centre],
    chosen: list[Transaction],
    licensed: set[str],
) -> list[tuple[str, float, int, int]]:
    """(centre id, score, completed, rejected) by rank."""
    rows = [
        (c.center_id, *score(c, year, chosen))
        for c, _ in members(governorate, year, centres, chosen, licensed)
    ]
    return sorted(rows, key=lambda row: (-row[1], -row[2], row[0]))
