"""Prometheus metrics shared by every process, and the HTTP endpoint that serves them.

Metric objects live at module level as prometheus-client intends: they are
registrations, not clients, and hold no connection. Labels are bounded sets
(type, service, method, code, queue, reason, governorate, wilayat, agency, outcome); ids never
become labels. Business counters are labelled by governorate (11), wilayat (~60) and agency (~20).
"""

import functools

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Bucket bounds at our latency objectives: 5/10/25/50/100/250 ms for RPCs.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# grpc_type as go-grpc-prometheus names it: unary, client_stream, server_stream, bidi_stream. A
# stream's handling time is its whole life (a watch lasts minutes), so latency objectives and
# panels select grpc_type="unary".
GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter(
    "sanad_grpc_server_started_total",
    "RPCs started on the server.",
    GRPC_LABELS,
)
GRPC_HANDLED = Counter(
    "sanad_grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    [*GRPC_LABELS, "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "sanad_grpc_server_handling_seconds",
    "Time to handle an RPC, until its status is sent (for a stream: its whole life).",
    GRPC_LABELS,
    buckets=LATENCY_BUCKETS,
)

AMQP_PUBLISHED = Counter(
    "sanad_amqp_published_total",
    "Messages published, by outcome: confirmed; refused (returned or nacked by the broker: no"
    " queue, or its queue full); failed (not confirmed); unavailable (not sent).",
    ["exchange", "outcome"],
)
AMQP_PUBLISH_SECONDS = Histogram(
    "sanad_amqp_publish_confirm_seconds",
    "Time from publish to the broker's confirm.",
    ["exchange"],
    buckets=LATENCY_BUCKETS,
)
AMQP_PACK_ITEMS = Histogram(
    "sanad_amqp_pack_items",
    "Items per published message of a packed type (1: published alone).",
    ["exchange"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
AMQP_CONSUMED = Counter("sanad_amqp_consumed_total", "Messages delivered to a worker.", ["queue"])
AMQP_ACKED = Counter("sanad_amqp_acked_total", "Messages acknowledged.", ["queue"])
AMQP_NACKED = Counter(
    "sanad_amqp_nacked_total", "Messages returned to the queue for a retry.", ["queue"]
)
AMQP_DEAD_LETTERED = Counter(
    "sanad_amqp_dead_lettered_total", "Messages dead-lettered, by reason.", ["queue", "reason"]
)
# Counted where AMQP_DEAD_LETTERED is, once the broker confirmed the letter: a refusal whose
# handling is retried, or whose letter is left unconfirmed at stop, counts once, at the attempt
# that sets it aside. As there, a letter published twice (its ack lost after the confirm) counts
# twice: two letters wait. Nobody told their submitter, so each needs an operator before it
# expires (SANAD_BATCH_DEAD_LETTER_TTL_DAYS): SanadBatchDeadLetteredUnanswered alerts on it.
BATCH_REFUSALS_UNANSWERED = Counter(
    "sanad_batch_refusals_unanswered_total",
    "Batches refused whole and dead-lettered without an answer to their submitter (no reply"
    " queue, or one the worker could not decode or may not answer), by reason.",
    ["reason"],
)
MICRO_BATCH_SIZE = Histogram(
    "sanad_worker_micro_batch_size",
    "Messages handled per micro-batch.",
    ["queue"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
RETRIES = Counter(
    "sanad_worker_retries_total", "Micro-batches retried after a transient failure.", ["queue"]
)
MONGO_WRITE_SECONDS = Histogram(
    "sanad_mongo_write_seconds",
    "Time of one MongoDB write transaction of a micro-batch.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
RECORDED_LAG_SECONDS = Histogram(
    "sanad_transaction_recorded_lag_seconds",
    "Time from a transaction's submission to its storage by a worker.",
    # Past a minute too: after an outage of the workers the panel shows how long, not 60 s.
    buckets=(
        *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        *(120.0, 300.0, 900.0, 1800.0, 3600.0),
    ),
)

# Wall-clock hours to days: the SLA targets of catalogue services are 4 h to 30 days.
COMPLETED_LAG_BUCKETS = (
    60.0,
    300.0,
    900.0,
    3600.0,
    4 * 3600.0,
    8 * 3600.0,
    24 * 3600.0,
    48 * 3600.0,
    72 * 3600.0,
    7 * 24 * 3600.0,
    14 * 24 * 3600.0,
    30 * 24 * 3600.0,
)
COMPLETED_LAG_SECONDS = Histogram(
    "sanad_transaction_completed_lag_seconds",
    "Wall-clock time from a transaction's submission to its completion.",
    ["agency"],
    buckets=COMPLETED_LAG_BUCKETS,
)

BUSINESS_LABELS = ["governorate", "wilayat", "agency"]
TRANSACTIONS_SUBMITTED = Counter(
    "sanad_transactions_submitted_total",
    "Transactions accepted (intake: confirmed by the broker; the batch worker: stored), by where"
    " and whose service.",
    BUSINESS_LABELS,
)
TRANSACTION_FEES = Counter(
    "sanad_transaction_fees_baisa_total",
    "Fees of accepted transactions, in baisa.",
    BUSINESS_LABELS,
)
TRANSACTIONS_FINISHED = Counter(
    "sanad_transactions_finished_total",
    "Transactions that reached a final status (completed, rejected, cancelled).",
    [*BUSINESS_LABELS, "outcome"],
)
TRANSACTIONS_WITHIN_SLA = Counter(
    "sanad_transactions_completed_within_sla_total",
    "Completed transactions whose running SLA clock stayed within the service's target.",
    BUSINESS_LABELS,
)
TRANSACTION_RATINGS = Histogram(
    "sanad_transaction_rating",
    "Beneficiaries' ratings (1-5) of completed transactions.",
    ["governorate"],
    buckets=(1, 2, 3, 4, 5),
)

REGISTRY_LOOKUPS = Counter(
    "sanad_registry_lookups_total",
    "Centres and catalogue services asked of the registry itself for a submission or batch item "
    "its copy refused, by outcome: asked (answered), failed (no answer in time), joined "
    "(another refusal's question at the same moment), skipped (the process, or the caller "
    "whose refusal it was, asked too often just now: the copy's refusal stood).",
    ["outcome"],
)

AUDIT_EVENTS_DEFERRED = Gauge(
    "sanad_audit_events_deferred",
    "Audit events MongoDB did not take yet, waiting in the process to be written again.",
)
AUDIT_EVENTS_LOST = Counter(
    "sanad_audit_events_lost_total",
    "Audit events never stored: too many waiting, or still waiting when the process stopped.",
)

AUTH_JWT_KEYS = Gauge(
    "sanad_auth_jwt_keys",
    "Bearer-token verification keys in use (the JWT key file's keys).",
)
AUTH_JWT_KEY_RELOADS = Counter(
    "sanad_auth_jwt_key_reloads_total",
    "Reads of the JWT key file after it changed, by outcome (failed: the previous keys stay).",
    ["outcome"],
)
AUTH_JWT_KEY_FILE_FAILING = Gauge(
    "sanad_auth_jwt_key_file_failing",
    "1 while the JWT key file cannot be read or parsed and the previous keys stay in use.",
)
AUTH_REVOKED_CERTS = Gauge(
    "sanad_auth_revoked_certs",
    "Client-certificate serial numbers refused (the revoked-certificates file's entries).",
)
AUTH_REVOKED_CERTS_RELOADS = Counter(
    "sanad_auth_revoked_certs_reloads_total",
    "Reads of the revoked-certificates file after it changed, by outcome (failed: the"
    " previous list stays).",
    ["outcome"],
)
AUTH_REVOKED_TOKENS = Gauge(
    "sanad_auth_revoked_tokens",
    "Subjects whose bearer tokens are refused (the revoked-tokens file's entries).",
)
AUTH_REVOKED_TOKENS_RELOADS = Counter(
    "sanad_auth_revoked_tokens_reloads_total",
    "Reads of the revoked-tokens file after it changed, by outcome (failed: the previous list"
    " stays).",
    ["outcome"],
)
AUTH_REVOKED_TOKENS_FILE_FAILING = Gauge(
    "sanad_auth_revoked_tokens_file_failing",
    "1 while the revoked-tokens file cannot be read or parsed and the previous list stays in use.",
)
AUTH_REVOKED_CERTS_FILE_FAILING = Gauge(
    "sanad_auth_revoked_certs_file_failing",
    "1 while the revoked-certificates file cannot be read or parsed and the previous list"
    " stays in use.",
)

TLS_CERTIFICATE_EXPIRY = Gauge(
    "sanad_tls_certificate_expiry_timestamp_seconds",
    "When a certificate the process read at start stops being valid (Unix time), by file: its"
    " own certificate's end, and for a CA file the latest end among its certificates.",
    ["file"],
)

DEPENDENCY_UP = Gauge(
    "sanad_dependency_up",
    "Whether a dependency answered its last check (1) or not (0).",
    ["dependency"],
)


FINISH_OUTCOMES = ("completed", "rejected", "cancelled")

# Business series are created at zero as soon as a process knows their labels, before their
# first event: a counter child is exported from its first increment, so Prometheus's first
# sample of it is already 1 and increase() and rate() never see that step (the Centres and
# Award panels lost the first submission, outcome and rating of every place, agency and outcome
# in every process: a helper saw 1 completion per hour for 7). Each process creates only what
# it counts, from a bounded set of labels: intake and the batch worker the submissions of each
# centre of their registry copy with the agencies of the services it offers; the ingest worker
# the outcomes of the places and agencies of its recent rollups at start, then of each
# transaction it stores or changes, and every 30 s of the places new in today's rollups (the
# batch worker's transactions).


def prepare_submitted(governorate: str, wilayat: str, agency: str) -> None:
    """Create at zero the submission and fee series of one place and agency."""
    _submitted_children(governorate, wilayat, agency)


@functools.cache
def prepare_outcomes(governorate: str, wilayat: str, agency: str) -> None:
    """Create at zero the outcome, SLA, completion-time and rating series of one place and
    agency."""
    for outcome in FINISH_OUTCOMES:
        TRANSACTIONS_FINISHED.labels(governorate, wilayat, agency, outcome)
    TRANSACTIONS_WITHIN_SLA.labels(governorate, wilayat, agency)
    _agency_lag(agency)
    _governorate_ratings(governorate)


@functools.cache
def _agency_lag(agency: str) -> Histogram:
    return COMPLETED_LAG_SECONDS.labels(agency)


@functools.cache
def _governorate_ratings(governorate: str) -> Histogram:
    return TRANSACTION_RATINGS.labels(governorate)


@functools.cache
def _submitted_children(governorate: str, wilayat: str, agency: str) -> tuple[Counter, Counter]:
    """The two counters of one label set; the labels are bounded sets, so is this cache."""
    return (
        TRANSACTIONS_SUBMITTED.labels(governorate, wilayat, agency),
        TRANSACTION_FEES.labels(governorate, wilayat, agency),
    )


def count_submitted(governorate: str, wilayat: str, agency: str, fee_baisa: int) -> None:
    """One accepted transaction and its fee (call after the broker confirmed it)."""
    submitted, fees = _submitted_children(governorate, wilayat, agency)
    submitted.inc()
    fees.inc(fee_baisa)


def count_finished(
    governorate: str,
    wilayat: str,
    agency: str,
    outcome: str,
    *,
    within_sla: bool = False,
    lag_seconds: float | None = None,
) -> None:
    """A transaction reached completed/rejected/cancelled (call once, when first applied)."""
    TRANSACTIONS_FINISHED.labels(governorate, wilayat, agency, outcome).inc()
    if outcome == "completed":
        if within_sla:
            TRANSACTIONS_WITHIN_SLA.labels(governorate, wilayat, agency).inc()
        if lag_seconds is not None:
            COMPLETED_LAG_SECONDS.labels(agency).observe(max(lag_seconds, 0.0))


def count_rating(governorate: str, rating: int) -> None:
    """A beneficiary's rating (call once, when first applied)."""
    TRANSACTION_RATINGS.labels(governorate).observe(rating)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics on its own HTTP port in a background thread."""
    start_http_server(port, addr=host)
