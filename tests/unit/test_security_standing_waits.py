"""How a wait held to its credential (sanad.security.standing.Standing.waiting) ends: by the
timer once the credential stops holding, by its caller's cancel however the two meet, and at
the cost of a few attributes an item (every item of a submission stream is awaited there)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from sanad import errors
from sanad.security.standing import Standing


class Credential:
    """Holds until `revoked`; `on_refusal` runs as it is refused."""

    def __init__(self) -> None:
        self.revoked = False
        self.on_refusal = lambda: None

    def verify(self) -> None:
        if self.revoked:
            self.on_refusal()
            raise errors.Unauthenticated("the client certificate has been revoked")


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_wait_ends_unauthenticated_once_the_credential_is_revoked() -> None:
    credential = Credential()
    standing = Standing(credential.verify, every_s=0.01)
    credential.revoked = True
    with standing.watched(), pytest.raises(errors.Unauthenticated, match="revoked"):
        async with asyncio.timeout(5):
            await standing.waiting(forever)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_wait_its_caller_cancels_as_the_credential_fails_ends_cancelled() -> None:
    # Both at once: the caller went away (the server stopping) as the timer refused. The
    # caller's cancel is not taken for the timer's and swallowed.
    credential = Credential()
    standing = Standing(credential.verify, every_s=0.01)

    async def wait() -> None:
        with standing.watched():
            await standing.waiting(forever)

    task = asyncio.create_task(wait())
    credential.on_refusal = task.cancel
    credential.revoked = True
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert task.cancelled()


async def test_a_wait_that_ends_anyway_leaves_no_cancel_pending_and_the_refusal_standing() -> None:
    credential = Credential()
    standing = Standing(credential.verify, every_s=0.01)

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "answered"  # what it awaited took the interruption as its end
        return "never"

    with standing.watched():
        credential.revoked = True
        assert await standing.waiting(stubborn) == "answered"
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0)  # no cancel left to land on the next await
        with pytest.raises(errors.Unauthenticated):
            await standing.waiting(forever)


async def test_the_awaited_calls_own_timeout_is_its_own() -> None:
    credential = Credential()
    standing = Standing(credential.verify, every_s=60)

    async def times_out() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    with standing.watched(), pytest.raises(TimeoutError):
        await standing.waiting(times_out)


@contextlib.contextmanager
def counted_timeouts() -> Iterator[list[float | None]]:
    """Every asyncio.timeout() armed within."""
    armed: list[float | None] = []
    real = asyncio.timeout

    def counting(delay: float | None) -> asyncio.Timeout:
        armed.append(delay)
        return real(delay)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "timeout", counting)
        yield armed


async def test_reading_a_streams_items_arms_no_timeout_for_each() -> None:
    # An asyncio.timeout() an item cost about 5 µs of intake's CPU per streamed submission,
    # ten times what the item's credential check costs: the timer cancels the wait itself.
    async def items() -> AsyncIterator[int]:
        for n in range(100):
            yield n

    standing = Standing(lambda: None, every_s=60)
    with standing.watched(), counted_timeouts() as armed:
        taken = [n async for n in standing.guarded(items())]
    assert taken == list(range(100))
    assert armed == []


async def test_a_check_that_fails_otherwise_is_tried_again_and_a_later_refusal_still_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A failure that is no refusal (a revocation list unreadable for a moment) raised out of
    # the timer's callback ended its checks for good: the stream then stayed open revoked.
    credential = Credential()
    failures = 0

    def verify() -> None:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise OSError("the revoked-certificates file cannot be read just now")
        credential.revoked = True
        credential.verify()

    standing = Standing(verify, every_s=0.01)
    with standing.watched(), pytest.raises(errors.Unauthenticated, match="revoked"):
        async with asyncio.timeout(5):
            await standing.waiting(forever)
    assert failures == 3
    said = [r for r in caplog.records if "could not check" in r.getMessage()]
    assert len(said) == 1  # once while it lasts, not at every interval
