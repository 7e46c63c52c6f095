"""Waiting in a unit test for something another task brings about."""

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], within_s: float = 5.0) -> None:
    """Look every 10 ms until condition() is true; fail once within_s has passed."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + within_s
    while not condition():
        assert loop.time() < ends, f"condition not met within {within_s:g} s"
        await asyncio.sleep(0.01)
