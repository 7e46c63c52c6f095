"""sanad.mongo.within: MongoDB work bounded by the caller's time left, ending as Unavailable."""

import asyncio

import pytest
from pymongo.errors import ExecutionTimeout, OperationFailure

from sanad.errors import Unavailable
from sanad.mongo import within


async def test_a_pause_between_operations_ends_at_the_deadline_as_unavailable() -> None:
    # As PyMongo's with_transaction sleeps before a retry once it saw that some time is left:
    # pymongo.timeout bounds operations, not that sleep.
    ended = []

    async def pause() -> None:
        async with within(0.05):
            await asyncio.sleep(30)
            ended.append(True)

    with pytest.raises(Unavailable):
        await pause()
    assert ended == []


async def test_an_operation_timing_out_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        async with within(5):
            raise ExecutionTimeout("operation exceeded time limit", 50)


async def test_no_time_left_is_unavailable_before_anything_runs() -> None:
    ran = False
    with pytest.raises(Unavailable):
        async with within(0):
            ran = True
    assert not ran


async def test_a_failure_that_will_not_pass_is_raised_as_it_is() -> None:
    with pytest.raises(OperationFailure):
        async with within(5):
            raise OperationFailure("not authorized", 13)


async def test_without_a_deadline_nothing_is_bounded_here() -> None:
    async with within(None):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "error",
    [
        OperationFailure("not primary", 10107),
        OperationFailure("primary stepped down", 189),
        OperationFailure("interrupted due to repl state change", 11602),
        OperationFailure("retry me", 1, {"errorLabels": ["RetryableWriteError"]}),
    ],
)
async def test_a_primary_stepping_down_is_unavailable_not_internal(error: OperationFailure) -> None:
    # A replica set electing a new primary: retried later, it passes.
    with pytest.raises(Unavailable):
        async with within(5):
            raise error
