"""A wait for a future of one's own, bounded by a timer instead of asyncio.timeout()."""

import asyncio

import pytest

from sanad.expiry import awaited_within


async def test_a_future_answered_in_time_gives_its_result() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, "claimed")
    assert await awaited_within(future, 1.0) == "claimed"


async def test_a_future_left_unanswered_past_the_limit_raises_timeout_and_holds_it() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await awaited_within(future, 0.01)
    # Whoever would answer it finds it done, as the coalescer and the packer check.
    assert future.done()
    assert isinstance(future.exception(), TimeoutError)


async def test_no_time_left_ends_the_wait_at_once() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(awaited_within(future, -1.0), 1.0)


async def test_an_error_the_future_holds_is_raised_as_it_is() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_exception(KeyError("duplicate"))
    with pytest.raises(KeyError):
        await awaited_within(future, 1.0)


async def test_a_cancelled_waiter_cancels_its_future_and_leaves_no_timer() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    waiter = asyncio.create_task(awaited_within(future, 0.05))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert future.cancelled()
    await asyncio.sleep(0.1)  # past the limit: a timer left behind would have failed here
    assert waiter.cancelled()


async def test_without_a_limit_the_wait_lasts_until_the_answer() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.05, future.set_result, "late")
    assert await awaited_within(future, None) == "late"
