"""Settings of the ingest worker."""

from typing import ClassVar

from pydantic import Field

from sanad.settings import AMQP_GUEST, AMQP_MAX_PREFETCH, ServerSettings, user_names


class IngestSettings(ServerSettings):
    """SANAD_INGEST_* choose its ports and micro-batch shape."""

    # It stores the hashes intake and the batch worker made; it hashes nothing itself.
    uses_civil_id_secret: ClassVar[bool] = False

    ingest_health_port: int = 50061
    ingest_metrics_port: int = 9104
    ingest_prefetch: int = Field(default=1000, ge=1, le=AMQP_MAX_PREFETCH)
    ingest_batch_max: int = Field(default=500, ge=1)
    ingest_batch_wait_ms: int = Field(default=50, ge=0, le=60_000)
    # Seconds every try of the micro-batch in hand may fail transiently (a database timing out
    # its writes while it answers pings) before health says NOT_SERVING
    # (workers.lifecycle.handling_check).
    ingest_failing_after_s: float = Field(default=30.0, gt=0, le=86_400)
    # A status change or rating for a transaction not stored yet, or a numbered change whose
    # predecessor is not applied yet, waits on the retry queue, at most this many times, then
    # is dead-lettered (unknown-transaction, change-out-of-order). Its first wait is the first
    # delay and each next one twice the last, up to the retry delay: what it waits for is most
    # often a moment behind it, on another worker, and a fixed 2 s applied a burst of one
    # transaction's changes spread over two workers at about one a second. Intake accepted
    # what it waits for, so the budget (about 3 minutes) outlasts what may hold that back: a
    # stalled or cut-off worker's unacked messages, returned once a heartbeat gives up on its
    # connection (SANAD_AMQP_HEARTBEAT_S, about 33 s at 10 s; RabbitMQ's 60 s, which let a
    # partitioned worker hold them 183-213 s, past this budget), and the 60 s MongoDB lets a
    # killed worker's open transaction block the documents it wrote. Ten retries (20 s)
    # dead-lettered good changes behind a worker paused for 30 s. A change waiting for an
    # earlier one counts afresh whenever its transaction moved on.
    ingest_retry_delay_ms: int = Field(default=2000, ge=1)
    ingest_retry_first_delay_ms: int = Field(default=125, ge=1)
    ingest_max_retries: int = Field(default=90, ge=0)
    # The RabbitMQ users whose messages the worker stores, comma-separated: intake's (and an
    # operator's who replays dead letters keeps the original's). Anyone else allowed to write
    # to the transactions exchange (a batch worker, a guest) would otherwise store
    # transactions, status changes and audit events in intake's name. Empty: anyone's, in dev
    # only (every process is guest there); production refuses it.
    ingest_publishers: str = ""

    @property
    def ingest_publisher_names(self) -> frozenset[str]:
        """SANAD_INGEST_PUBLISHERS as names (sanad.settings.user_names)."""
        return user_names(self.ingest_publishers)

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if not self.ingest_publisher_names:
            problems.append(
                "an empty SANAD_INGEST_PUBLISHERS: name intake's RabbitMQ user, or anyone who"
                " may write to the transactions exchange stores transactions in its name"
            )
        elif AMQP_GUEST in self.ingest_publisher_names:
            problems.append("guest in SANAD_INGEST_PUBLISHERS: any guest login could publish")
        return problems

    def cross_problems(self) -> list[str]:
        """The common checks, and a first delay set longer than the longest is refused; the
        default one follows a longest delay set under it (every wait is then the longest)."""
        problems = super().cross_problems()
        if (
            "ingest_retry_first_delay_ms" in self.model_fields_set
            and self.ingest_retry_first_delay_ms > self.ingest_retry_delay_ms
        ):
            problems.append(
                "SANAD_INGEST_RETRY_FIRST_DELAY_MS is longer than SANAD_INGEST_RETRY_DELAY_MS,"
                " the longest wait: every wait would be the longest"
            )
        return problems
