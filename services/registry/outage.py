"""When MongoDB does not answer: every registry store call is bounded and says "retry later"."""

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sanad.mongo import within


class Bounded(Protocol):
    """A store whose calls to MongoDB must finish within timeout_s."""

    timeout_s: float


Self = TypeVar("Self", bound=Bounded)
P = ParamSpec("P")
R = TypeVar("R")


def bounded(
    method: Callable[Concatenate[Self, P], Awaitable[R]],
) -> Callable[Concatenate[Self, P], Coroutine[Any, Any, R]]:
    """A store method run within its store's timeout_s (sanad.mongo.within): a transaction's
    retries included, and a timeout or a lost connection is UNAVAILABLE, never INTERNAL."""

    @functools.wraps(method)
    async def call(self: Self, *args: P.args, **kwargs: P.kwargs) -> R:
        async with within(self.timeout_s):
            return await method(self, *args, **kwargs)

    return call
