"""Transactions cut off from MongoDB are ended on the server as soon as it answers again.

A transaction whose commit or abort never reached the server (a connection that failed, a
server frozen or restarting, a caller's deadline or a stop that cancelled the wait) stays
open there, holding every document it wrote, until the server gives up on it
(transactionLifetimeLimitSeconds, 60 s). Until then each later transaction writing one of
those documents meets a write conflict: after an outage, a worker stored nothing for a minute
(its rollups), and the registry would refuse every write (its revision counter). PyMongo drops
such a session from its pool, but never tells the server.

`transaction_session(client)` is `client.start_session()` for a block that runs a transaction.
When the block ends in a failure that may have left its transaction open, the session is kept
out of PyMongo's pool and its id noted; the next `transaction_session` of that client first
sends `killSessions` for the noted ids (as MongoDB does, SecantusDB aborts their transactions
then). A failure the server answered (a write conflict, a duplicate key) aborted the
transaction already and notes nothing.
"""

import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, PyMongoError

log = logging.getLogger("sanad.mongo")

# The longest wait for the server to take a killSessions, before the transaction goes on
# without it (a caller's shorter deadline bounds it too).
KILL_WITHIN_S = 1.0
# The server has ended a noted transaction by itself after its lifetime (60 s by default);
# ids noted longer ago than this are dropped unsent.
KEPT_S = 120.0


@dataclass
class _Lost:
    """A client's sessions whose transactions may still be open on the server."""

    ids: list[tuple[float, Mapping[str, Any]]] = field(default_factory=list)


# By the client's identity: clients compare equal by their hosts alone, and two clients of the
# same hosts (other users, say) must not kill each other's sessions.
_LOST: dict[int, _Lost] = {}


def _lost_of(client: AsyncMongoClient[Any]) -> _Lost:
    key = id(client)
    if key not in _LOST:
        _LOST[key] = _Lost()
        weakref.finalize(client, _LOST.pop, key, None)
    return _LOST[key]


@asynccontextmanager
async def transaction_session(client: AsyncMongoClient[Any]) -> AsyncIterator[AsyncClientSession]:
    """A session for one transaction (with its retries), once the client's earlier lost
    transactions are ended on the server, when it answers."""
    await kill_lost(client)
    async with client.start_session() as session:
        try:
            yield session
        except BaseException as error:
            if _may_be_open(error):
                _note(client, session)
            raise


async def kill_lost(client: AsyncMongoClient[Any]) -> None:
    """Send killSessions for the client's noted sessions; those it could not reach the server
    for stay noted for the next try. Never raises for the server's sake."""
    lost = _LOST.get(id(client))
    if lost is None or not lost.ids:
        return
    fresh_after = time.monotonic() - KEPT_S
    taken = [(noted, lsid) for noted, lsid in lost.ids if noted > fresh_after]
    lost.ids.clear()
    if not taken:
        return
    try:
        with pymongo.timeout(KILL_WITHIN_S):
            await client.admin.command("killSessions", [lsid for _, lsid in taken])
    except PyMongoError as error:
        lost.ids[:0] = taken
        log.info("lost transactions not ended yet (%d): %s", len(taken), error)
    except BaseException:
        lost.ids[:0] = taken
        raise
    else:
        log.info("ended %d transactions a failure cut off from the database", len(taken))


def lost_count(client: AsyncMongoClient[Any]) -> int:
    """How many of the client's sessions are noted and not yet killed."""
    lost = _LOST.get(id(client))
    return 0 if lost is None else len(lost.ids)


def _may_be_open(error: BaseException) -> bool:
    """Whether the failure may have left the transaction open: a connection that failed, a wait
    cancelled (a deadline, a stop), a time limit PyMongo applied itself (it gives up before
    sending a statement, or the abort, when too little time is left), any other error PyMongo
    raises without the server. A statement the server refused (a write conflict, a duplicate
    key) aborted the transaction there; so did our own refusal caused by one, and PyMongo
    aborts the transaction of a block that raises anything else."""
    while True:
        if isinstance(error, ConnectionFailure | ExecutionTimeout):
            return True
        if isinstance(error, OperationFailure):
            return False
        if isinstance(error, PyMongoError) or not isinstance(error, Exception):
            return True
        if error.__cause__ is None:
            return False
        error = error.__cause__


def _note(client: AsyncMongoClient[Any], session: AsyncClientSession) -> None:
    """Keep the session's server session out of PyMongo's pool and note its id. One that never
    sent a command is PyMongo's placeholder, whose id would be a pooled session's taken for
    the asking (`session.session_id` draws one), which killSessions would end under whichever
    operation takes it next."""
    server_session = session._server_session
    session_id = getattr(server_session, "session_id", None)
    if session_id is None:  # the placeholder: nothing of this session reached the server
        return
    # PyMongo drops a session that met a network error from its pool (dirty) but keeps one
    # whose wait was cancelled: it must serve no other operation that killSessions would end.
    server_session.mark_dirty()
    _lost_of(client).ids.append((time.monotonic(), session_id))
