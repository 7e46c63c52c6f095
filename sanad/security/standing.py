"""A streaming call held to its credential for as long as it stays open.

The credential is verified again once `every_s` has passed since the last time: before an
answer or an item (check), and, while the call sends and takes nothing (a watch with no change
to tell, a submission stream whose caller sends nothing more, a Health Watch), by a timer. A
call that waits when its credential stops holding is ended at once, UNAUTHENTICATED: only the
wait it was in is interrupted (waiting), so a submission stream's items taken are still
answered. Without the timer such a stream stayed open as long as its caller kept it, its
credential revoked or expired meanwhile.
"""

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from sanad import errors

Answer = TypeVar("Answer")
log = logging.getLogger("sanad.security")


class Standing:
    """One call's credential, verified by `verify` (Unauthenticated when it no longer
    holds) at most every `every_s`."""

    def __init__(self, verify: Callable[[], object], every_s: float) -> None:
        self.verify = verify
        self.every_s = every_s
        self.checked_at = time.monotonic()
        self.refusal: errors.Unauthenticated | None = None
        self._failing = False  # the timer's last check failed otherwise than by refusing
        # The task waiting in waiting(), and the one the timer interrupted.
        self._waiter: asyncio.Task[Any] | None = None
        self._interrupted: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def check(self) -> None:
        """Unauthenticated when the credential that opened the call no longer holds."""
        self._refuse_if_refused()
        now = time.monotonic()
        if now - self.checked_at < self.every_s:
            return
        self.checked_at = now
        try:
            self.verify()
        except errors.Unauthenticated as error:
            self.refusal = error
            raise

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """Within, the credential is checked by a timer too, while the call sends nothing."""
        loop = asyncio.get_running_loop()
        # The call's context (its request id) for what a check logs.
        self._schedule(loop, contextvars.copy_context())
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def waiting(self, start: Callable[[], Awaitable[Answer]]) -> Answer:
        """What start() brings, or Unauthenticated as soon as the credential stops holding
        while it is awaited (within watched(): the timer cancels the wait).

        Every item of a submission stream is awaited here, so it costs an attribute or two: an
        asyncio.timeout() a wait cost about 5 µs an item, a few percent of what intake spends
        on one. The interruption is the one asyncio.timeout() makes: a cancel of the waiting
        task, taken back (uncancel) when it was ours alone."""
        self._refuse_if_refused()
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._waiter = task
        try:
            return await start()
        except asyncio.CancelledError:
            if self._interrupted is not task:
                raise
            self._interrupted = None
            if task.uncancel() > cancelling:
                raise  # cancelled by someone else too: its caller gone, the server stopping
            self._refuse_if_refused()
            raise
        finally:
            self._waiter = None
            if self._interrupted is task:  # what it awaited ended the wait all the same
                self._interrupted = None
                task.uncancel()

    async def answers(
        self, answers: AsyncIterator[Answer], *, checked: bool = False
    ) -> AsyncIterator[Answer]:
        """A stream's answers (or items), each awaited by waiting(), and handed on once the
        credential still holds when checked."""
        following = aiter(answers).__anext__
        while True:
            try:
                answer = await self.waiting(following)
            except StopAsyncIteration:
                return
            if checked:
                self.check()
            yield answer

    def guarded(self, items: AsyncIterator[Answer]) -> AsyncIterator[Answer]:
        """A client stream's items, each handed on once the credential still holds."""
        return self.answers(items, checked=True)

    def _refuse_if_refused(self) -> None:
        if self.refusal is not None:
            raise errors.Unauthenticated(self.refusal.message)

    def _schedule(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        due_s = max(self.checked_at + self.every_s - time.monotonic(), 0.0)
        self._timer = loop.call_later(due_s, self._due, loop, context, context=context)

    def _due(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        self._timer = None
        try:
            self.check()
        except errors.Unauthenticated:
            if self._waiter is not None and self._interrupted is None:
                self._interrupted = self._waiter
                self._waiter.cancel()  # ends the wait now
            return  # the call ends at its next wait, answer or item otherwise
        except Exception:
            # Not a refusal (a revocation list that cannot be read just now, a bug): said once
            # while it lasts (every interval of every waiting stream would repeat it), and
            # looked at again next time; raised here it would end the timer's checks for good.
            if not self._failing:
                log.exception("could not check a waiting call's credential; checking it again")
            self._failing = True
        else:
            self._failing = False
        self._schedule(loop, context)


def kept(
    behaviour: Callable[..., Any], check: Callable[[Any], object], every_s: float
) -> Callable[..., Any]:
    """A streaming behaviour in its own kind (an async generator, or a handler that writes
    with context.write and returns, as grpc_health's Watch), run after check(context) and
    ended Unauthenticated once check(context), repeated every every_s, refuses."""
    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
            check(context)
            standing = Standing(partial(check, context), every_s)
            with standing.watched():
                async for response in standing.answers(behaviour(request, context)):
                    yield response

        return streamed

    async def returned(request: Any, context: Any) -> Any:
        check(context)
        standing = Standing(partial(check, context), every_s)
        with standing.watched():
            return await standing.waiting(partial(behaviour, request, context))

    return returned
