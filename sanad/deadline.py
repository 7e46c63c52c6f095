"""The caller's remaining time, shared out over every outbound call and retry of one RPC."""

import random
import time
from collections.abc import Callable
from typing import Protocol

# Kept back from the caller's deadline so our UNAVAILABLE arrives before theirs expires.
MARGIN_S = 0.1
MARGIN_SHARE = 0.1
# What a stream of submissions keeps back for its items: their answers leave one after another,
# and a MongoDB that hangs releases every refused item at the same moment, the deadline less the
# margin. 0.1 s was too little for 17 answers queued behind each other on a busy machine: a 15 s
# stream got none of them, only DEADLINE_EXCEEDED (a chaos run froze MongoDB for 20 s).
ITEMS_MARGIN_S = 1.0


class Deadline:
    """When the caller stops waiting, less a margin; None means the caller set no deadline."""

    def __init__(
        self,
        remaining_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        most_margin_s: float = MARGIN_S,
    ) -> None:
        self.clock = clock
        self.end: float | None = None
        if remaining_s is not None:
            margin = min(most_margin_s, remaining_s * MARGIN_SHARE)
            self.end = clock() + remaining_s - margin

    def left(self) -> float | None:
        """Seconds an outbound call may take now (never negative), or None without a deadline."""
        if self.end is None:
            return None
        return max(self.end - self.clock(), 0.0)


NO_DEADLINE = Deadline(None)


class TimedCall(Protocol):
    """A call being served that knows its caller's deadline (a grpc.aio.ServicerContext)."""

    def time_remaining(self) -> float | None: ...


def caller_deadline(call: TimedCall, most_margin_s: float = MARGIN_S) -> Deadline:
    """What is left of the caller's deadline, for every outbound call and retry the RPC makes;
    a tenth of it, at most most_margin_s, kept back (ITEMS_MARGIN_S for a stream's items).

    Read it once, as the call begins, and share that Deadline: one read later keeps back a
    tenth of what is left by then, so little that an answer sent at its end races the caller's
    deadline."""
    remaining = call.time_remaining()
    return Deadline(
        float(remaining) if remaining is not None else None, most_margin_s=most_margin_s
    )


def pause_after_losing(
    tried: int, took_s: float, deadline: Deadline, longest_s: float = 1.0
) -> float | None:
    """How long to pause before trying a change again that lost a race (a compare-and-set, a
    write conflict), or None when that pause and a try as long as the last would end past the
    caller's deadline: a try cut off by the deadline would cost the caller its answer and the
    database its work, for nothing. Random, to spread out a crowd of callers that all lost to
    one change (callers that retry in step keep colliding), and growing with the tries and with
    how long a try takes, to keep pace with a database slowed down by that crowd."""
    longest = min(took_s * 2**tried, longest_s)
    pause = random.uniform(0, longest)  # noqa: S311 - jitter, not a secret
    left = deadline.left()
    if left is not None and pause + took_s >= left:
        return None
    return pause
