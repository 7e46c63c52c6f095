"""Per-identity limits: token buckets (a caller over its rate gets RateLimited with a retry
delay) and a cap on the streaming calls an identity holds open."""

import time
from collections import OrderedDict
from collections.abc import Callable

from sanad.errors import RateLimited

MAX_TRACKED = 10_000


class RateLimiter:
    """`rate_per_s` calls per second with bursts up to `burst`, per key; rate 0 turns it off."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> None:
        """Spend one token of key's bucket, or raise RateLimited saying when one is due."""
        if self.rate <= 0:
            return
        now = self.clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"rate limit of {self.rate:g}/s exceeded", (1 - tokens) / self.rate)
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)


class StreamCap:
    """Counts each identity's open streaming calls; refuses one beyond `limit` (0: no cap).

    A stream pays one rate-limit token when it opens and nothing while it stays open, and a watch
    polls MongoDB all that time: without a cap one identity could hold thousands of them.
    """

    RETRY_AFTER_S = 1.0  # a hint only: a slot frees when one of the caller's streams ends

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        """Hold one of key's slots, or raise RateLimited (RESOURCE_EXHAUSTED) naming the cap."""
        if self.limit <= 0:
            return
        held = self._open.get(key, 0)
        if held >= self.limit:
            raise RateLimited(
                f"at most {self.limit} streaming calls per identity may be open at once",
                self.RETRY_AFTER_S,
            )
        self._open[key] = held + 1

    def release(self, key: str) -> None:
        """Give back a slot acquire() gave; an identity with none open is forgotten."""
        if self.limit <= 0:
            return
        left = self._open.pop(key) - 1
        if left:
            self._open[key] = left
