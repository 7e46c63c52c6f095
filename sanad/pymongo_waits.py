"""PyMongo's waits for its own locks, made safe to cancel on Python 3.11.

PyMongo's async client waits for a free connection, a connection being opened, or a server to
select on asyncio Conditions, through `asyncio.wait_for(condition.wait(), timeout)`
(pymongo/lock.py). On Python 3.11, wait_for cancelled just after its own timeout fired gives up
waiting for the inner wait to end (CPython issue 86296, fixed only in 3.12, by rewriting
wait_for over asyncio.timeout). The inner wait then takes the Condition's lock after its caller
has left: nobody releases it again, and every later checkout of that client waits for good.
A cancel lands there whenever a caller's bound (sanad.mongo.within's asyncio.timeout, a health
check's, a gRPC call its caller cancelled) ends while PyMongo is waiting, which a database that
stopped answering under load makes likely: after a 45 s freeze, a process's client answered
UNAVAILABLE until the process restarted.

`mend()` gives PyMongo's lock module the wait_for of 3.12 (asyncio.timeout around a plain
await), so the inner wait ends in the caller's own task, lock taken back, whatever cancels it.
It runs before the first client is built (sanad.mongo.connect); on 3.12 and later it does
nothing.

PyMongo's network layer sends every command through `asyncio.wait_for` too (a module attribute
there, not a name of its own), and a cancel arriving as a send completes was dropped the same
way: a watch stream whose client had gone went on polling MongoDB, holding its caller's stream
slot, until the next change (a helper saw 38 such watches in intake, 18 in a registry). The
network layer is given a view of asyncio with the same wait_for.
"""

import asyncio
import sys
import types
from collections.abc import Awaitable
from typing import TypeVar

import pymongo.lock
import pymongo.network_layer

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109
    """asyncio.wait_for as Python 3.12 runs it: TimeoutError at the timeout, and the awaited
    work ended in this task whether the timeout or a cancel stops it."""
    async with asyncio.timeout(timeout):
        return await awaitable


def mend() -> None:
    """Make PyMongo's Condition waits and sends safe to cancel (see the module's docstring)."""
    if sys.version_info < (3, 12):
        pymongo.lock.wait_for = wait_for  # type: ignore[assignment]
        pymongo.network_layer.asyncio = _asyncio_with_safe_wait_for()


def _asyncio_with_safe_wait_for() -> types.ModuleType:
    """asyncio as the network layer sees it: everything the same, but wait_for."""
    view = types.ModuleType("asyncio")
    view.__dict__.update(vars(asyncio))
    view.wait_for = wait_for  # type: ignore[attr-defined]
    return view
