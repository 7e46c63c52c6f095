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
from pymongo.errors import ConnectionFailure, PyMongoError

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


_LOST: "weakref.WeakKeyDictionary[AsyncMongoClient[Any], _Lost]" = weakref.WeakKeyDictionary()


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
    lost = _LOST.get(client)
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
    lost = _LOST.get(client)
    return 0 if lost is None else len(lost.ids)


def _may_be_open(error: BaseException) -> bool:
    """A connection that failed, or a wait cancelled (a deadline, a stop): the commit or abort
    may never have reached the server. Any other PyMongo error is the server's answer."""
    return isinstance(error, ConnectionFailure) or not isinstance(error, Exception)


def _note(client: AsyncMongoClient[Any], session: AsyncClientSession) -> None:
    # PyMongo drops a session that met a network error from its pool (dirty) but keeps one
    # whose wait was cancelled: it must not serve another operation that killSessions would end.
    session._server_session.mark_dirty()
    _LOST.setdefault(client, _Lost()).ids.append((time.monotonic(), session.session_id))
