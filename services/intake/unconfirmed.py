"""The claims this intake made whose publish the broker has not confirmed yet, so that each
accepted transaction is counted once: at the first confirm of its claim.

A fresh claim whose publish fails (broker down, confirm too late) stays here; the caller's
retry with the same request id finds the claim made (a replay) and counts the transaction when
its own publish is confirmed. The first confirm takes the claim out, so the fresh call, its
retries and concurrent retries count it once between them.

Kept in the process, not in the claim record: marking the record after each confirm would cost
every submission a second database round trip. A retry that reaches another intake replica, or
this one after a restart, is not counted; the workers' rollups, which the reports read, still
store the transaction once.
"""

# Claims waiting at most. Only failed publishes wait; the oldest is dropped first.
MAX_WAITING = 100_000


class UnconfirmedClaims:
    """Request keys of fresh claims made here and not yet confirmed, oldest first."""

    def __init__(self, limit: int = MAX_WAITING) -> None:
        self.limit = limit
        self._keys: dict[str, None] = {}  # a dict keeps insertion order: an ordered set

    def __len__(self) -> int:
        return len(self._keys)

    def claimed(self, key: str) -> None:
        """This process claimed `key` afresh and is about to publish it."""
        self._keys[key] = None
        if len(self._keys) > self.limit:
            del self._keys[next(iter(self._keys))]  # its retry is long overdue, if it comes

    def confirmed(self, key: str) -> bool:
        """The broker confirmed a publish of `key`: True when it is the first since the claim
        was made here, that is when the transaction is to be counted."""
        if key not in self._keys:
            return False
        del self._keys[key]
        return True
