"""Failures no domain rule raised: which may pass (UNAVAILABLE), and how a streamed item that
meets one is answered alone (INTERNAL otherwise) while the rest of its stream goes on.

A unary call's such failure ends the call, and the server interceptor answers it INTERNAL. A
streamed item's must not end the stream: the items before it may already be confirmed by the
broker (stored, so they must be answered) and the items after it deserve their own outcome.
"""

import logging

from pymongo.errors import PyMongoError

from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.errors import DomainError, Internal, Unavailable
from sanad.mongo import passing
from sanad.telemetry.logs import LineBudget, request_id_var

log = logging.getLogger("sanad.intake")

# A transaction's label for a failure worth running the transaction again for; sanad.mongo.passing
# leaves it out, as the stores that run transactions retry on it themselves.
TRANSACTION_LABEL = "TransientTransactionError"
# Lines of streamed items answered UNAVAILABLE: at most 10 a second (an outage of MongoDB fails
# every item of every stream).
UNAVAILABLE_LINES = LineBudget(lines=10, per_s=1.0)


def transient(error: BaseException) -> bool:
    """A MongoDB failure that may pass, so the caller may retry: what sanad.mongo.passing says,
    or a transaction's transient failure."""
    if not isinstance(error, PyMongoError):
        return False
    return passing(error) or error.has_error_label(TRANSACTION_LABEL)


def item_failure(error: Exception, index: int, request_id: str) -> DomainError:
    """The answer to an item whose submission raised `error`, which no domain rule raised;
    logged here, once (UNAVAILABLE within UNAVAILABLE_LINES' budget), with the item's index and
    request id and the call's request id (the log's own), never the submission (its civil
    number)."""
    item = {"item_index": index, "item_request_id": request_id[:MAX_CODE_LENGTH]}
    if transient(error):
        if (extra := UNAVAILABLE_LINES.fields("unavailable", item)) is not None:
            log.warning(
                "streamed item %d answered UNAVAILABLE: %s",
                index,
                type(error).__name__,
                extra=extra,
            )
        return Unavailable("the database did not answer as it should; retry later")
    log.error("streamed item %d answered INTERNAL", index, exc_info=error, extra=item)
    return Internal(f"internal error; quote request id {request_id_var.get()}")
