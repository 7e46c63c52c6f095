"""A range of days is read from yearly, monthly and daily rollups, coarsest first."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanad import rollups
from sanad.rollups import day_of
from services.metrics.periods import OPEN_START, Piece, pieces

YEARLY, MONTHLY, DAILY = rollups.YEARLY, rollups.MONTHLY, rollups.COLLECTION


def test_a_calendar_year_reads_one_yearly_piece() -> None:
    assert pieces("2024-01-01", "2025-01-01") == [Piece(YEARLY, "period", "2024", "2025")]


def test_a_quarter_reads_its_months() -> None:
    assert pieces("2024-04-01", "2024-07-01") == [Piece(MONTHLY, "period", "2024-04", "2024-07")]


def test_ragged_ends_read_days_and_the_middle_reads_months_and_years() -> None:
    assert pieces("2023-11-15", "2025-02-03") == [
        Piece(DAILY, "day", "2023-11-15", "2023-12-01"),
        Piece(MONTHLY, "period", "2023-12", "2024-01"),
        Piece(YEARLY, "period", "2024", "2025"),
        Piece(MONTHLY, "period", "2025-01", "2025-02"),
        Piece(DAILY, "day", "2025-02-01", "2025-02-03"),
    ]


def test_open_ends_read_every_year_in_one_piece() -> None:
    assert pieces("0000-00-00", "9999-99-99") == [Piece(YEARLY, "period", "0001", "9999")]
    assert pieces("9998-12-15", "9999-12-31") == [Piece(DAILY, "day", "9998-12-15", "9999-01-01")]


@pytest.mark.parametrize(
    ("first", "end"), [("2024-03-05", "2024-03-05"), ("2024-03-06", "2024-03-01")]
)
def test_an_empty_range_reads_nothing(first: str, end: str) -> None:
    assert pieces(first, end) == []


def _days_of(piece: Piece) -> set[date]:
    """Every day a piece covers."""
    if piece.collection == DAILY:
        low, high = date.fromisoformat(piece.low), date.fromisoformat(piece.high)
    elif piece.collection == MONTHLY:
        low, high = (date.fromisoformat(f"{m}-01") for m in (piece.low, piece.high))
    else:
        low, high = (date(int(y), 1, 1) for y in (piece.low, piece.high))
    return {low + timedelta(days=n) for n in range((high - low).days)}


@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(min_value=0, max_value=1200))
def test_the_pieces_cover_every_day_of_the_range_exactly_once(first: date, length: int) -> None:
    end = first + timedelta(days=length)
    covered: list[date] = []
    for piece in pieces(first.isoformat(), end.isoformat()):
        covered.extend(_days_of(piece))
    assert sorted(covered) == [first + timedelta(days=n) for n in range(length)]


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (date(500, 1, 1), "0500-01-01"),
        (datetime(1, 2, 3, 4, 5, tzinfo=UTC), "0001-02-03"),
        (datetime(2024, 3, 5, 23, 59, tzinfo=UTC), "2024-03-05"),
    ],
)
def test_days_are_formatted_with_a_four_digit_year(moment: date, day: str) -> None:
    assert day_of(moment) == day


def test_a_range_ending_before_the_year_1000_reads_up_to_that_day() -> None:
    assert pieces(OPEN_START, "0500-01-01") == [Piece(YEARLY, "period", "0001", "0500")]


@pytest.mark.parametrize("bound", ["500-01-01", "", "2024-13-01", OPEN_START])
def test_an_end_that_is_not_a_day_is_refused_not_read_as_open(bound: str) -> None:
    with pytest.raises(ValueError):
        pieces("2024-01-01", bound)
