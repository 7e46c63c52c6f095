"""Transaction status rules and the SLA clock."""

from datetime import UTC, datetime, timedelta

import pytest

from sanad.domain.transactions import Status, Step, can_change, sla_clock

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Status.SUBMITTED, Status.RECORDED),
        (Status.RECORDED, Status.IN_PROGRESS),
        (Status.IN_PROGRESS, Status.AWAITING_DOCUMENTS),
        (Status.AWAITING_DOCUMENTS, Status.IN_PROGRESS),
        (Status.IN_PROGRESS, Status.COMPLETED),
        (Status.AWAITING_AGENCY, Status.CANCELLED),
        # A service the agency completes (or refuses, or pauses) at once, with no in-progress
        # step between: DESIGN's arrow is the usual path, not a required one.
        (Status.RECORDED, Status.COMPLETED),
        (Status.RECORDED, Status.REJECTED),
        (Status.RECORDED, Status.AWAITING_DOCUMENTS),
    ],
)
def test_legal_changes_are_allowed(current: Status, new: Status) -> None:
    assert can_change(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Status.COMPLETED, Status.IN_PROGRESS),
        (Status.CANCELLED, Status.COMPLETED),
        (Status.SUBMITTED, Status.COMPLETED),
        (Status.AWAITING_DOCUMENTS, Status.COMPLETED),  # a paused one resumes first
        (Status.AWAITING_AGENCY, Status.COMPLETED),
        (Status.REJECTED, Status.REJECTED),
    ],
)
def test_illegal_changes_are_refused(current: Status, new: Status) -> None:
    assert not can_change(current, new)


def test_sla_clock_excludes_the_paused_intervals() -> None:
    history = [
        Step(Status.SUBMITTED, at(0)),
        Step(Status.RECORDED, at(0)),
        Step(Status.IN_PROGRESS, at(1)),
        Step(Status.AWAITING_DOCUMENTS, at(2)),
        Step(Status.IN_PROGRESS, at(12)),
        Step(Status.AWAITING_AGENCY, at(13)),
        Step(Status.IN_PROGRESS, at(15)),
        Step(Status.COMPLETED, at(16)),
    ]
    clock = sla_clock(history, now=at(100))
    assert clock.paused_seconds == 12 * 3600
    assert clock.elapsed_seconds == 4 * 3600


def test_sla_clock_of_an_open_transaction_runs_until_now() -> None:
    history = [Step(Status.SUBMITTED, at(0)), Step(Status.AWAITING_AGENCY, at(1))]
    clock = sla_clock(history, now=at(3))
    assert clock.paused_seconds == 2 * 3600
    assert clock.elapsed_seconds == 3600


@pytest.mark.parametrize(
    ("finished_after", "elapsed"),
    [
        (timedelta(hours=48), 48 * 3600),
        # Cut down to whole seconds, half a second past a 48-hour SLA read as within it
        # (metrics helper): a second begun counts whole.
        (timedelta(hours=48, microseconds=500_000), 48 * 3600 + 1),
        (timedelta(hours=48, microseconds=1), 48 * 3600 + 1),
    ],
)
def test_sla_clock_counts_a_second_begun_as_whole(finished_after: timedelta, elapsed: int) -> None:
    history = [Step(Status.SUBMITTED, T0), Step(Status.COMPLETED, T0 + finished_after)]
    assert sla_clock(history, now=at(100)).elapsed_seconds == elapsed


def test_sla_clock_counts_fractions_exactly_before_rounding() -> None:
    # 100 s in all, 30.3 s of them paused: 69.7 s running reads 70, the pause 30 (as floats,
    # 100.0 - 30.3 is 69.70000000000000284, and a pause of 10.3 to 40.6 is not exactly 30.3).
    history = [
        Step(Status.SUBMITTED, T0),
        Step(Status.AWAITING_DOCUMENTS, T0 + timedelta(seconds=10.3)),
        Step(Status.IN_PROGRESS, T0 + timedelta(seconds=40.6)),
        Step(Status.COMPLETED, T0 + timedelta(seconds=100)),
    ]
    clock = sla_clock(history, now=at(100))
    assert (clock.paused_seconds, clock.elapsed_seconds) == (30, 70)
    exact = [Step(Status.SUBMITTED, T0), Step(Status.COMPLETED, T0 + timedelta(seconds=7))]
    assert sla_clock(exact, now=at(100)).elapsed_seconds == 7
