"""A parked message's retries bound a wait in which what it waits for does not move: a change
waiting behind a long line of its transaction's changes, which moves on between its returns,
starts its count again each time; one whose predecessor never comes is still dead-lettered."""

from typing import Any

from sanad.amqp.outcomes import Retry
from tests.unit.test_dead_letter_user_header import RETRY_QUEUE, Exchange, back_from, incoming
from tests.unit.test_dead_letter_user_header import publisher as outcomes_of


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
