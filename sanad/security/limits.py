"""Per-identity token buckets: a caller over its rate gets RateLimited with a retry delay."""

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
