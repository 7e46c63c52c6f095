"""One MongoDB transaction per unit of work, with the workers' own retry rules.

PyMongo's `with_transaction` retries a failing transaction silently for up to 120 s.
That hides a database outage from metrics and logs and holds a SIGTERM drain for two
minutes. Here only a write conflict (another worker touched the same rollup or
transaction a moment ago) is retried on the spot with short jittered pauses for up to
CONFLICT_WINDOW_S; connection trouble, an unknown commit result, a conflict that persists
and every other failure of the database become TransientError at once, so the consumer
pauses, backs off, counts the retry, and handles the whole micro-batch again. Handling it
again is safe: every write is idempotent (inserts keyed by id, the stored ones skipped;
changes remembered by change id; rollups counted only for what this transaction applies for
the first time).

Only an error about a document written (sanad.mongo.about_document: one the driver cannot
encode, a duplicate key, a validator's refusal, a document over 16 MB...) is raised as it
is: the consumer then handles the micro-batch's messages one by one and dead-letters the
one that keeps failing. Anything else (authorization or authentication refused after a
credential rotation, a full disk, a timeout, a lost primary, a write concern not met, a
code this module does not know) says nothing about the messages, and dead-lettering them
for it would send good messages to the dead-letter queue.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, PyMongoError

from sanad.amqp.verdicts import TransientError
from sanad.lost_sessions import transaction_session
from sanad.mongo import about_document
from sanad.telemetry.metrics import MONGO_WRITE_SECONDS

log = logging.getLogger("sanad.worker.mongo")

T = TypeVar("T")
# Write conflicts are retried here for this long before the consumer's backoff takes over.
CONFLICT_WINDOW_S = 30.0
_TRANSIENT_LABELS = (
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
    "RetryableWriteError",
)


class ConcurrentUpdate(TransientError):
    """Another worker changed a transaction we were changing; try the unit again."""


async def run_atomically(
    client: AsyncMongoClient[dict[str, Any]],
    operation: str,
    body: Callable[[AsyncClientSession], Awaitable[T]],
) -> T:
    """Run body in one transaction; conflicts retried here; an error about a document written
    raised as it is, any other failure of the database as TransientError."""
    started = time.perf_counter()
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await _once(client, body)
        except ConcurrentUpdate:
            if time.perf_counter() - started > CONFLICT_WINDOW_S:
                raise
        except ConnectionFailure as error:
            raise TransientError(f"MongoDB unreachable: {error}") from error
        except PyMongoError as error:
            if not any(error.has_error_label(label) for label in _TRANSIENT_LABELS):
                if about_document(error):
                    raise  # the messages' content: the consumer takes them one by one
                raise TransientError(_failed(operation, error)) from error
            if time.perf_counter() - started > CONFLICT_WINDOW_S or error.has_error_label(
                "UnknownTransactionCommitResult"
            ):
                raise TransientError(str(error)) from error
        else:
            MONGO_WRITE_SECONDS.labels(operation).observe(time.perf_counter() - started)
            return result
        log.debug("write conflict in %s, attempt %d", operation, attempt)
        # Jittered, capped at half a second: conflicts pass quickly and should not stall.
        await asyncio.sleep(random.uniform(0, min(0.005 * 1.5**attempt, 0.5)))  # noqa: S311


async def _once(
    client: AsyncMongoClient[dict[str, Any]],
    body: Callable[[AsyncClientSession], Awaitable[T]],
) -> T:
    async with transaction_session(client) as session, await session.start_transaction():
        return await body(session)


def _failed(operation: str, error: PyMongoError) -> str:
    """What the consumer logs while it retries: the operation and the server's code."""
    code = getattr(error, "code", None)
    return f"MongoDB failed {operation} ({type(error).__name__}, code {code}): {error}"
