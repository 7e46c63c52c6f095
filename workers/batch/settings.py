"""Settings of the batch worker."""

from pydantic import Field

from sanad.settings import AMQP_MAX_BODY_BYTES, AMQP_MAX_PREFETCH, RegistryFollowerSettings

SECONDS_A_DAY = 24 * 3600


class BatchSettings(RegistryFollowerSettings):
    """SANAD_BATCH_* choose its ports, the size limits, the storage chunk and how long a refused
    batch stays in the dead-letter queue."""

    batch_health_port: int = 50062
    batch_metrics_port: int = 9105
    # Batches are large; hold few unacked at a time.
    batch_prefetch: int = Field(default=2, ge=1, le=AMQP_MAX_PREFETCH)
    # Largest number of items (items + history_items) one BatchSubmission may carry.
    batch_max_items: int = Field(default=5000, ge=1)
    # Largest message body, refused unparsed: 16 MiB is over 3 KiB an item at 5000 items (a
    # seed history item is under 200 bytes, a full history of long notes can pass 50 KiB).
    batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1, le=AMQP_MAX_BODY_BYTES)
    # Items judged, then stored in one MongoDB transaction, at a time.
    batch_chunk: int = Field(default=1000, ge=1)
    # Seconds every try of the batch in hand may fail transiently (a database timing out its
    # writes while it answers pings, a registry refusing) before health says NOT_SERVING
    # (workers.lifecycle.handling_check).
    batch_failing_after_s: float = Field(default=30.0, gt=0, le=86_400)
    # Days a batch refused as a whole, answered with the reason or not, stays in P.batch.dead
    # before the broker drops it: its body holds every item's clear civil number (DESIGN
    # section 6). An answered submitter sends it again; an unanswered refusal alerts. 0 keeps
    # it until an operator takes it, which production refuses. Fractions allowed (tests use a
    # second).
    batch_dead_letter_ttl_days: float = Field(default=14.0, ge=0, le=365)

    @property
    def batch_dead_letter_ttl_s(self) -> float | None:
        """The expiration of a refused batch's dead letter, to the millisecond the broker
        counts in; None keeps it."""
        return round(self.batch_dead_letter_ttl_days * SECONDS_A_DAY, 3) or None

    def cross_problems(self) -> list[str]:
        """The common checks, and an instant dead-letter TTL refused: under a second a letter is
        gone before anyone could read it (or, rounded to 0 ms, would be kept for good), while
        the setting reads as "keep it for a while"."""
        problems = super().cross_problems()
        if self.batch_dead_letter_ttl_days > 0 and (self.batch_dead_letter_ttl_s or 0) < 1:
            problems.append("SANAD_BATCH_DEAD_LETTER_TTL_DAYS must be 0 or at least a second")
        return problems

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if self.batch_dead_letter_ttl_days == 0:
            problems.append(
                "SANAD_BATCH_DEAD_LETTER_TTL_DAYS=0: refused batches would keep clear civil"
                " numbers in the dead-letter queue for good"
            )
        return problems
