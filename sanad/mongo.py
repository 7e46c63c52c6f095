"""MongoDB clients: built from settings in main, never at import time; calls bounded in time."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError, WriteConcernError

from sanad.errors import Unavailable
from sanad.settings import CommonSettings

Document = dict[str, Any]
log = logging.getLogger("sanad.mongo")


def connect(settings: CommonSettings, app_name: str) -> AsyncMongoClient[Document]:
    """A client with timeouts (and TLS files, when set) from settings; it connects lazily."""
    return AsyncMongoClient(
        settings.mongo_url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongo_timeout_ms,
        connectTimeoutMS=settings.mongo_timeout_ms,
        socketTimeoutMS=settings.mongo_socket_timeout_ms,
        w="majority",
        **tls_options(settings),
    )


def tls_options(settings: CommonSettings) -> dict[str, Any]:
    """PyMongo TLS options from SANAD_MONGO_TLS_*; none leaves SANAD_MONGO_URL in charge."""
    options: dict[str, Any] = {}
    if settings.mongo_tls_ca_file:
        options.update(tls=True, tlsCAFile=settings.mongo_tls_ca_file)
    if settings.mongo_tls_cert_key_file:
        options.update(tls=True, tlsCertificateKeyFile=settings.mongo_tls_cert_key_file)
    return options


def database(
    client: AsyncMongoClient[Document], settings: CommonSettings
) -> AsyncDatabase[Document]:
    """The project's database on that client."""
    return client[settings.mongo_database]


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """True when the server answers."""
    await client.admin.command("ping")
    return True


@asynccontextmanager
async def within(timeout_s: float | None) -> AsyncIterator[None]:
    """Run MongoDB calls (a transaction's retries included) within timeout_s, None for the
    client's own timeouts; a failure that may pass (see `passing`) becomes Unavailable, which
    callers see as UNAVAILABLE ("retry later"), never INTERNAL."""
    if timeout_s is not None and timeout_s <= 0:
        raise Unavailable("no time left of the caller's deadline to reach the database")
    try:
        with pymongo.timeout(timeout_s):
            yield
    except PyMongoError as error:
        if passing(error):
            raise Unavailable("the database did not answer in time; retry later") from error
        raise


def passing(error: PyMongoError) -> bool:
    """A failure that may pass, so the caller may retry later: a timeout, a lost connection, or
    a write not acknowledged as durable as asked (it may be rolled back)."""
    return bool(error.timeout or isinstance(error, ConnectionFailure | WriteConcernError))


@dataclass
class Indexes:
    """MongoDB's readiness for a process whose store needs its indexes: the server answers,
    and the first time it does, the indexes are built (before the first write, so building one
    never stalls a transaction open on the same collection)."""

    client: AsyncMongoClient[Document]
    ensure: Callable[[], Awaitable[None]]
    built: bool = False

    async def ready(self) -> bool:
        """The health check: ping, and build the indexes once."""
        await ping(self.client)
        if not self.built:
            await self.ensure()
            self.built = True
        return True

    async def build_at_start(self, timeout_s: float) -> None:
        """Try once before serving; when MongoDB is not up yet, the health check builds them
        and reports NOT_SERVING until it has."""
        try:
            await asyncio.wait_for(self.ready(), timeout_s)
        except Exception as error:  # any failure: the health check tries again
            log.warning(
                "MongoDB does not answer yet (%s); indexes follow once it does",
                type(error).__name__,
            )
