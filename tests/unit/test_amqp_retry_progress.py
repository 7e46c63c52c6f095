"""A parked message's retries bound a wait in which what it waits for does not move: a change
waiting behind a long line of its transaction's changes, which moves on between its returns,
starts its count again each time; one whose predecessor never comes is still dead-lettered.
Its delays double from a short first one to the longest, and start again with its count."""

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from sanad.amqp.outcomes import OutcomePublisher
from sanad.amqp.topology import Topology
from sanad.amqp.verdicts import Retry
from tests.unit.test_dead_letter_user_header import RETRY_QUEUE, Exchange, back_from, incoming
from tests.unit.test_dead_letter_user_header import publisher as outcomes_of
from workers.ingest.settings import IngestSettings


def waiting(applied: int) -> Retry:
    return Retry("change-out-of-order", "change 9 waits", progress=f"applied {applied}")


async def returns(outcomes: Any, exchange: Exchange, message: Any, retry: Retry) -> Any:
    """Park message with retry; the copy as the broker brings it back."""
    await outcomes.publish([message], [retry], exchange)
    return back_from(RETRY_QUEUE, exchange.published[-1].headers)


async def test_a_wait_behind_a_line_that_moves_is_never_given_up() -> None:
    exchange = Exchange()
    outcomes = outcomes_of(exchange, max_retries=3)
    message = incoming({}, user_id=None)
    for applied in range(1, 8):  # twice the budget of returns, the line moving each time
        message = await returns(outcomes, exchange, message, waiting(applied))
    assert all(copy.headers.get("x-sanad-reason") is None for copy in exchange.published)
    assert [copy.headers["x-sanad-retries"] for copy in exchange.published] == [1] * 7
    assert exchange.published[-1].headers["x-sanad-waiting-at"] == "applied 7"


async def test_a_wait_in_which_nothing_moves_is_dead_lettered_after_the_budget() -> None:
    exchange = Exchange()
    outcomes = outcomes_of(exchange, max_retries=3)
    message = incoming({}, user_id=None)
    for _ in range(3):
        message = await returns(outcomes, exchange, message, waiting(4))
    await outcomes.publish([message], [waiting(4)], exchange)

    *parked, letter = exchange.published
    assert [copy.headers["x-sanad-retries"] for copy in parked] == [1, 2, 3]
    assert letter.headers["x-sanad-reason"] == "change-out-of-order"
    assert letter.headers["x-sanad-detail"] == "change 9 waits (gave up after 3 retries)"


async def test_a_line_that_moved_once_then_stopped_gives_up_a_budget_after_it_stopped() -> None:
    exchange = Exchange()
    outcomes = outcomes_of(exchange, max_retries=2)
    message = incoming({}, user_id=None)
    for applied in (1, 1, 2, 2, 2):
        message = await returns(outcomes, exchange, message, waiting(applied))
    *parked, letter = exchange.published
    assert [copy.headers["x-sanad-retries"] for copy in parked] == [1, 2, 1, 2]
    # Two returns with nothing moved since "applied 2": the budget, so the next is the letter.
    assert letter.headers["x-sanad-reason"] == "change-out-of-order"


def backing_off(
    exchange: Exchange, max_retries: int, first_s: float = 0.125, longest_s: float = 2.0
) -> OutcomePublisher:
    """A publisher whose parked messages wait first_s first, doubling up to longest_s (by
    default the ingest worker's defaults)."""
    outcomes = OutcomePublisher(
        Topology("t"),
        "t.batch",
        max_retries=max_retries,
        retry_first_delay_s=first_s,
        retry_delay_s=longest_s,
        timeout_s=5.0,
        on_stall=lambda _: None,
    )
    outcomes.channel = SimpleNamespace(default_exchange=exchange)  # type: ignore[assignment]
    return outcomes


def delays(exchange: Exchange) -> list[float]:
    """Each parked copy's delay as the broker reads it: its expiration, in milliseconds."""
    return [int(copy.properties.expiration) / 1000 for copy in exchange.published]


async def test_a_wait_doubles_from_the_first_delay_up_to_the_longest() -> None:
    exchange = Exchange()
    outcomes = backing_off(exchange, max_retries=8)
    message = incoming({}, user_id=None)
    for _ in range(7):
        message = await returns(outcomes, exchange, message, waiting(4))
    assert delays(exchange) == [0.125, 0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


async def test_a_wait_that_sees_its_line_move_starts_again_from_the_first_delay() -> None:
    exchange = Exchange()
    outcomes = backing_off(exchange, max_retries=8)
    message = incoming({}, user_id=None)
    for applied in (1, 1, 1, 2, 2, 3):
        message = await returns(outcomes, exchange, message, waiting(applied))
    assert delays(exchange) == [0.125, 0.25, 0.5, 0.125, 0.25, 0.125]


async def test_a_wait_for_something_with_no_progress_to_show_backs_off_too() -> None:
    # A change for a transaction not stored yet names no progress: its delays only grow.
    exchange = Exchange()
    outcomes = backing_off(exchange, max_retries=8)
    message = incoming({}, user_id=None)
    for _ in range(3):
        message = await returns(outcomes, exchange, message, Retry("unknown-transaction", "x"))
    assert delays(exchange) == [0.125, 0.25, 0.5]


def test_without_a_first_delay_every_wait_is_the_retry_delay() -> None:
    outcomes = outcomes_of(Exchange(), max_retries=3)
    assert [outcomes.retry_delay(retries) for retries in (0, 1, 5, 89, 500)] == [1.0] * 5


def test_a_long_count_never_overflows_the_delay() -> None:
    outcomes = backing_off(Exchange(), max_retries=10_000)
    assert outcomes.retry_delay(5_000) == 2.0


def test_a_first_delay_longer_than_the_longest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANAD_INGEST_RETRY_FIRST_DELAY_MS", "5000")
    monkeypatch.setenv("SANAD_INGEST_RETRY_DELAY_MS", "2000")
    with pytest.raises(ValidationError, match="every wait would be the longest"):
        IngestSettings()


def test_a_longest_delay_under_the_default_first_one_is_every_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANAD_INGEST_RETRY_DELAY_MS", "100")
    settings = IngestSettings()
    outcomes = backing_off(
        Exchange(),
        max_retries=3,
        first_s=settings.ingest_retry_first_delay_ms / 1000,
        longest_s=settings.ingest_retry_delay_ms / 1000,
    )
    assert [outcomes.retry_delay(retries) for retries in range(3)] == [0.1, 0.1, 0.1]
