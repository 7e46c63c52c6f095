"""run_atomically sorts MongoDB's failures: an error about a document written is raised as it
is (the consumer takes the messages one by one and dead-letters the one that keeps failing);
every other failure of the database is TransientError (the consumer backs off and handles the
whole micro-batch again), so a credential rotation or a full disk never dead-letters good
messages."""

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WriteError,
)
from pymongo.errors import DocumentTooLarge as ClientDocumentTooLarge

from sanad.amqp.verdicts import TransientError
from workers.storage import atomic
from workers.storage.atomic import ConcurrentUpdate, run_atomically


class _Transaction:
    """A transaction whose commit raises `commit_error`, if given."""

    def __init__(self, commit_error: Exception | None) -> None:
        self.commit_error = commit_error

    async def __aenter__(self) -> "_Transaction":
        return self

    async def __aexit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is None and self.commit_error is not None:
            raise self.commit_error


class _Session:
    def __init__(self, commit_error: Exception | None) -> None:
        self.commit_error = commit_error
        # PyMongo's placeholder, until a command is sent: no id (sanad.lost_sessions).
        self._server_session = object()

    async def __aenter__(self) -> "_Session":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def start_transaction(self) -> _Transaction:
        return _Transaction(self.commit_error)


class FakeClient:
    """Just enough of AsyncMongoClient for run_atomically: sessions and transactions."""

    def __init__(self, commit_error: Exception | None = None) -> None:
        self.commit_error = commit_error

    def start_session(self) -> _Session:
        return _Session(self.commit_error)


def _failing(error: Exception) -> tuple[list[int], Callable[[Any], Any]]:
    """A body that raises error on every attempt, and the list its attempts are counted in."""
    attempts: list[int] = []

    async def body(session: Any) -> None:
        attempts.append(1)
        raise error

    return attempts, body


def _bulk(*codes: int) -> BulkWriteError:
    return BulkWriteError(
        {
            "writeErrors": [
                {"index": n, "code": code, "errmsg": f"code {code}"} for n, code in enumerate(codes)
            ],
            "writeConcernErrors": [],
            "nInserted": 0,
        }
    )


def _labelled(error: PyMongoError, label: str) -> PyMongoError:
    error._add_error_label(label)
    return error


# Failures about the database, not about any message: every one must retry the micro-batch.
NOT_ABOUT_A_DOCUMENT = {
    "unauthorized after a role change": OperationFailure("not authorized on sanad", 13),
    "authentication failed after a password rotation": OperationFailure("auth failed", 18),
    "out of disk space": OperationFailure("No space left on device", 14031),
    "a server error without a label": OperationFailure("internal error", 1),
    "a not-primary error without a label": OperationFailure("not primary", 10107),
    "interrupted at shutdown, unlabelled": OperationFailure("interrupted at shutdown", 11600),
    "a time limit exceeded": ExecutionTimeout("operation exceeded time limit", 50),
    "a write concern not met": WriteConcernError("waiting for replication timed out", 64),
    "a write error with a server code": WriteError("Unauthorized", 13),
    "a write conflict reported as a write error": _bulk(112),
    "write errors of which one is not the document's": _bulk(121, 14031),
    "a bulk write with only a write concern error": BulkWriteError(
        {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "timed out"}]}
    ),
    "a client used after close": InvalidOperation("Cannot use AsyncMongoClient after close"),
    "a configuration error": ConfigurationError("unknown option"),
    "an unlabelled code unknown here": OperationFailure("something new", 99999),
}

# Failures about a document written: writing it again fails the same way.
ABOUT_A_DOCUMENT = {
    "a validator's refusal": WriteError("Document failed validation", 121),
    "a duplicate key": DuplicateKeyError("E11000 duplicate key error", 11000),
    "validator refusals in a bulk write": _bulk(121, 121),
    "a duplicate key and a dotted field name in a bulk write": _bulk(11000, 57),
    "an update that makes a document too large": _bulk(17419),
    "a document over 16 MB on the server": WriteError("BSONObjectTooLarge", 10334),
    "$inc on a stored string": WriteError("Cannot apply $inc to a value of non-numeric type", 14),
    "a document the driver cannot encode": ClientDocumentTooLarge("document too large"),
}


@pytest.mark.parametrize("error", NOT_ABOUT_A_DOCUMENT.values(), ids=NOT_ABOUT_A_DOCUMENT.keys())
async def test_a_failure_not_about_a_document_retries_the_micro_batch(error: Exception) -> None:
    attempts, body = _failing(error)
    with pytest.raises(TransientError) as raised:
        await run_atomically(FakeClient(), "record", body)  # type: ignore[arg-type]
    assert raised.value.__cause__ is error
    assert attempts == [1], "raised at once, for the consumer's backoff, not retried here"
    assert "record" in str(raised.value)


@pytest.mark.parametrize("error", ABOUT_A_DOCUMENT.values(), ids=ABOUT_A_DOCUMENT.keys())
async def test_a_failure_about_a_document_is_raised_as_it_is(error: Exception) -> None:
    attempts, body = _failing(error)
    with pytest.raises(type(error)) as raised:
        await run_atomically(FakeClient(), "record", body)  # type: ignore[arg-type]
    assert raised.value is error
    assert not isinstance(raised.value, TransientError)
    assert attempts == [1]


async def test_an_authorization_error_at_commit_retries_the_micro_batch() -> None:
    refused = OperationFailure("not authorized to commit", 13)

    async def body(session: Any) -> int:
        return 1

    with pytest.raises(TransientError) as raised:
        await run_atomically(FakeClient(commit_error=refused), "record", body)  # type: ignore[arg-type]
    assert raised.value.__cause__ is refused


async def test_a_write_conflict_is_still_retried_here_until_it_passes() -> None:
    attempts: list[int] = []

    async def body(session: Any) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise _labelled(OperationFailure("WriteConflict", 112), "TransientTransactionError")
        return "stored"

    assert await run_atomically(FakeClient(), "record", body) == "stored"  # type: ignore[arg-type]
    assert len(attempts) == 3


async def test_an_unknown_commit_result_is_still_transient_at_once() -> None:
    unknown = _labelled(OperationFailure("commit unknown", 91), "UnknownTransactionCommitResult")
    attempts, body = _failing(unknown)
    with pytest.raises(TransientError):
        await run_atomically(FakeClient(), "record", body)  # type: ignore[arg-type]
    assert attempts == [1]


async def test_a_stored_id_met_is_still_retried_here_as_a_concurrent_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stores turn duplicate key 11000 on their inserts into ConcurrentUpdate, which is
    retried here (reading first) and, past the window, raised as it is: a TransientError."""
    attempts: list[int] = []

    async def body(session: Any) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConcurrentUpdate("a transaction was stored before; retrying")
        return "stored"

    assert await run_atomically(FakeClient(), "record", body) == "stored"  # type: ignore[arg-type]
    monkeypatch.setattr(atomic, "CONFLICT_WINDOW_S", -1.0)
    _, always = _failing(ConcurrentUpdate("still conflicting"))
    with pytest.raises(ConcurrentUpdate):
        await run_atomically(FakeClient(), "record", always)  # type: ignore[arg-type]
