"""Worker metrics beyond the shared ones in sanad.telemetry.metrics: retries, cancels, batches.

Labels are bounded sets (queue, reason, outcome); ids never become labels.
"""

from prometheus_client import Counter, Histogram

DELAYED_RETRIES = Counter(
    "sanad_amqp_delayed_retries_total",
    "Messages parked on a delayed-retry queue, by reason.",
    ["queue", "reason"],
)
CONSUMER_CANCELLED = Counter(
    "sanad_amqp_consumer_cancelled_total",
    "Consumers cancelled by the broker (e.g. queue deleted); the worker exits.",
    ["queue"],
)
# outcome: applied (it changed the transaction); duplicate (a redelivery of one handled
# before, acked, changes nothing); superseded (an unnumbered status change older than the
# transaction's last step, acked, not applied); dead (refused, dead-lettered); retry (parked:
# its transaction is not stored yet or an earlier change is missing; counted at each try, the
# last one too, after which the consumer dead-letters it: sanad_amqp_dead_lettered_total counts
# that, not outcome dead). Only applied changed data.
CHANGES_APPLIED = Counter(
    "sanad_worker_changes_total",
    "Status changes and ratings handled by the ingest worker, by kind (status, rating) and "
    "outcome (applied, duplicate, superseded, dead, retry); only applied changed a transaction.",
    ["kind", "outcome"],
)
ITEM_OUTCOMES = ("accepted", "rejected")
BATCH_OUTCOMES = ("stored", "repeated", "refused")
BATCH_ITEMS = Counter(
    "sanad_batch_items_total",
    "Batch items answered, by outcome (accepted, rejected).",
    ["outcome"],
)
BATCHES = Counter(
    "sanad_batches_total",
    "Batch submissions answered, by outcome (stored, repeated, refused).",
    ["outcome"],
)
BATCH_SECONDS = Histogram(
    "sanad_batch_seconds",
    "Time to validate, store and answer one batch submission.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
