"""PyMongo's waits for its own locks end, lock given back, however they are cancelled: on Python
3.11, a cancel that came just after such a wait timed out left its Condition locked for good,
and every later checkout of that client waited forever (sanad.pymongo_waits)."""

import asyncio
import inspect
import random

import pymongo.lock
import pymongo.network_layer

from sanad import pymongo_waits


async def test_waits_cancelled_just_after_they_time_out_all_end_and_hold_nothing() -> None:
    pymongo_waits.mend()
    # PyMongo's own Condition and wait, as its pool's checkout and server selection use them.
    condition = pymongo.lock._async_create_condition(pymongo.lock._async_create_lock())
    chance = random.Random(11)

    async def checkout(wait_s: float) -> None:
        # The caller's bound ends just after PyMongo's wait timed out.
        async with asyncio.timeout(wait_s + chance.uniform(0, 0.002)), condition:
            while True:
                await pymongo.lock._async_cond_wait(condition, wait_s)

    for _ in range(40):
        wait_s = chance.uniform(0.002, 0.02)
        checkouts = [asyncio.create_task(checkout(wait_s)) for _ in range(60)]
        done, still_waiting = await asyncio.wait(checkouts, timeout=5)
        assert not still_waiting
        assert all(isinstance(task.exception(), TimeoutError) for task in done)
        async with asyncio.timeout(5), condition:  # free: no waiter kept it
            pass


def test_pymongo_still_waits_through_the_mended_wait_for() -> None:
    # A PyMongo release that waits some other way must be read again before it is trusted.
    assert "wait_for" in pymongo.lock._async_cond_wait.__code__.co_names
    pymongo_waits.mend()
    assert pymongo.lock.wait_for is pymongo_waits.wait_for


def test_pymongo_sends_through_the_mended_wait_for() -> None:
    # Its network layer reads wait_for from its module's asyncio at every send: a release that
    # imports it by name, or sends some other way, must be read again before it is trusted.
    source = inspect.getsource(pymongo.network_layer.async_sendall)
    assert "asyncio.wait_for(" in source
    pymongo_waits.mend()
    assert pymongo.network_layer.asyncio.wait_for is pymongo_waits.wait_for
    assert pymongo.network_layer.asyncio.sleep is asyncio.sleep  # the rest is asyncio's own
    assert asyncio.wait_for is not pymongo_waits.wait_for  # nobody else's changes
