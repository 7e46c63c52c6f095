"""MongoDB clients: built from settings in main, never at import time; calls bounded in time."""

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import pymongo
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WriteError,
)

from sanad import pymongo_waits
from sanad.errors import Unavailable
from sanad.runtime import StartupError
from sanad.settings import CommonSettings

Document = dict[str, Any]
log = logging.getLogger("sanad.mongo")
# How often a process waiting for indexes another builds says which are missing: at first, and
# at most, once per this many seconds (the pause doubles between them).
WARNING_FIRST_S = 1.0
WARNING_MAX_S = 300.0


def connect(settings: CommonSettings, app_name: str) -> AsyncMongoClient[Document]:
    """A client with timeouts (and TLS files, when set) from settings; it connects lazily.
    Its waits for its own locks are safe to cancel (sanad.pymongo_waits)."""
    pymongo_waits.mend()
    try:
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
    except OSError as error:  # a TLS file pymongo reads as it builds the client
        raise StartupError(
            f"cannot read a MongoDB TLS file ({error.strerror or error}"
            f"{f': {error.filename}' if error.filename else ''}): fix SANAD_MONGO_TLS_CA_FILE,"
            " SANAD_MONGO_TLS_CERT_KEY_FILE or the TLS files SANAD_MONGO_URL names"
        ) from None
    except (ConfigurationError, ValueError) as error:  # options pymongo refuses as it builds
        raise StartupError(f"SANAD_MONGO_URL: pymongo refuses it: {error}") from None


async def close(client: AsyncMongoClient[Document], within_s: float = 1.0) -> None:
    """Close the client, giving up within within_s on ending its sessions on the server.

    Ending them waits for a server like any command: with MongoDB gone, the client's full
    server selection timeout, in a drain that has a pod's grace period to fit in. The server
    forgets sessions nobody ends after 30 minutes.
    """
    with pymongo.timeout(within_s):
        await client.close()


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
async def within(
    timeout_s: float | None, *, waiting_for: str = "the database"
) -> AsyncIterator[None]:
    """Run MongoDB calls (a transaction's retries included) within timeout_s, None for the
    client's own timeouts; a failure that may pass (see `passing`) becomes Unavailable, which
    callers see as UNAVAILABLE ("retry later"), never INTERNAL. `waiting_for` names what a
    block that ran out of time waited for, when it waits for more than MongoDB.

    pymongo.timeout ends each operation in time, but not the pauses between them: a
    transaction's retry sleeps up to half a second after checking only that some time is left,
    which overran a caller's deadline (DEADLINE_EXCEEDED instead of our UNAVAILABLE). So the
    whole block also runs under asyncio.timeout."""
    if timeout_s is not None and timeout_s <= 0:
        raise Unavailable("no time left of the caller's deadline to reach the database")
    try:
        async with asyncio.timeout(timeout_s):
            with pymongo.timeout(timeout_s):
                yield
    except TimeoutError as error:
        raise Unavailable(f"{waiting_for} did not answer in time; retry later") from error
    except PyMongoError as error:
        if passing(error):
            raise Unavailable("the database did not answer in time; retry later") from error
        raise


class Bounded(Protocol):
    """A store whose calls to MongoDB must finish within timeout_s."""

    timeout_s: float


_Store = TypeVar("_Store", bound=Bounded)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def bounded(
    method: Callable[Concatenate[_Store, _P], Awaitable[_R]],
) -> Callable[Concatenate[_Store, _P], Coroutine[Any, Any, _R]]:
    """A store method run within its store's timeout_s (`within`): a transaction's retries
    included, and a timeout or a lost connection is UNAVAILABLE, never INTERNAL."""

    @functools.wraps(method)
    async def call(self: _Store, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with within(self.timeout_s):
            return await method(self, *args, **kwargs)

    return call


# Codes of a failure that passes with the deployment's state, as the retryable-writes spec lists
# them (PyMongo keeps them private, in helpers_shared._RETRYABLE_ERROR_CODES): a primary stepping
# down or a node recovering or shutting down, a network fault, a time limit. A write error in a
# bulk insert carries them too (sanad.coalesce gives each caller its own).
PASSING_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10058,  # LegacyNotPrimary
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)


def passing(error: PyMongoError) -> bool:
    """A failure that may pass, so the caller may retry later: a timeout, a lost connection, a
    write not acknowledged as durable as asked (it may be rolled back), one the driver or the
    server labels retryable, or one with a code of PASSING_CODES (a primary stepping down...)."""
    if error.timeout or isinstance(error, ConnectionFailure | WriteConcernError):
        return True
    if error.has_error_label("RetryableWriteError"):
        return True
    return isinstance(error, OperationFailure) and error.code in PASSING_CODES


# Codes of a write error that is about the document written (or the stored document an update
# meets), so writing it again fails the same way whatever the server's state. Whatever else the
# server or the driver reports (authorization, authentication, a full disk, a timeout, a lost
# primary, a write concern, a bad request, an unknown code) says nothing about the document.
DOCUMENT_ERROR_CODES = frozenset(
    {
        11000,  # DuplicateKey: the id or a unique key is taken
        11001,  # DuplicateKeyValue, and
        12582,  # duplicate key on update: the same, from servers before 3.0
        121,  # DocumentValidationFailure: the collection's validator refuses the document
        10334,  # BSONObjectTooLarge: the document, or the result of an update, is over 16 MB
        17419,  # the result of an update is over 16 MB (servers before 5.0)
        17420,  # the document to upsert is over 16 MB (servers before 5.0)
        17280,  # KeyTooLong: an indexed value too long (servers before 4.2)
        52,  # DollarPrefixedFieldName
        53,  # InvalidIdField: an _id that cannot be one (an array, a regex)
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        66,  # ImmutableField: an update would change _id
        28,  # PathNotViable: the stored document has a value where the update needs a path
        14,  # TypeMismatch: the stored value's type refuses the update ($inc on a string)
        15,  # Overflow: the update overflows the stored number
    }
)


def about_document(error: BaseException) -> bool:
    """An error about the document written rather than about the database: one the client
    cannot encode (bson's InvalidDocument, DocumentTooLarge), or write errors whose codes are
    all in DOCUMENT_ERROR_CODES. Writing the same document again fails the same way."""
    if isinstance(error, InvalidDocument):
        return True
    if isinstance(error, BulkWriteError):
        codes = [failure.get("code") for failure in error.details.get("writeErrors") or []]
        return bool(codes) and all(code in DOCUMENT_ERROR_CODES for code in codes)
    return isinstance(error, WriteError) and error.code in DOCUMENT_ERROR_CODES


IndexKeys = list[tuple[str, int]]


class IndexesMissing(Exception):
    """Indexes a process reads with, and leaves to another to build, do not exist yet."""

    def __init__(self, missing: Sequence[tuple[str, IndexKeys]], builder: str) -> None:
        names = ", ".join(f"{collection}.{index_name(keys)}" for collection, keys in missing)
        super().__init__(
            f"missing indexes {names}; {builder} builds them, this process only checks"
        )


def index_name(keys: IndexKeys) -> str:
    """MongoDB's default name of an index on keys, as listIndexes shows it."""
    return "_".join(f"{name}_{direction}" for name, direction in keys)


async def require_indexes(
    db: AsyncDatabase[Document], wanted: Iterable[tuple[str, IndexKeys]], builder: str
) -> None:
    """Raise IndexesMissing unless every (collection, keys) of wanted has an index of exactly
    those keys; only listIndexes, once per collection (a collection not created has none)."""
    found: dict[str, list[object]] = {}
    missing = []
    for collection, keys in wanted:
        if collection not in found:
            information = await db[collection].index_information()
            found[collection] = [spec.get("key") for spec in information.values()]
        if list(keys) not in found[collection]:
            missing.append((collection, keys))
    if missing:
        raise IndexesMissing(missing, builder)


@dataclass
class Indexes:
    """MongoDB's readiness for a process whose store needs its indexes: the server answers, and
    the first time it does, `ensure` builds the indexes (before the first write, so building one
    never stalls a transaction open on the same collection); or, for a process that leaves
    building them to another, checks they exist, raising IndexesMissing until they do."""

    client: AsyncMongoClient[Document]
    ensure: Callable[[], Awaitable[None]]
    built: bool = False  # the indexes exist: built here, or found built
    _missing: str = field(default="", repr=False)
    _next_warning: float = field(default=0.0, repr=False)
    _warning_every_s: float = field(default=WARNING_FIRST_S, repr=False)
    # One build at a time: the health check and a worker waiting to consume both ask.
    _building: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def ready(self) -> bool:
        """The health check: ping, and build (or find) the indexes once; a check that finds
        one missing tries again at the next health check."""
        await ping(self.client)
        if self.built:
            return True
        async with self._building:
            if not self.built:
                try:
                    await self.ensure()
                except IndexesMissing as missing:
                    self._warn(str(missing))
                    return False
                self.built = True
        return True

    async def build_at_start(self, timeout_s: float) -> None:
        """Try once before serving; when MongoDB is not up yet, the health check builds (or
        checks) them and reports NOT_SERVING until it has."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.ready()
        except Exception as error:  # any failure: the health check tries again
            log.warning(
                "MongoDB does not answer yet (%s); indexes follow once it does",
                type(error).__name__,
            )

    def _warn(self, missing: str) -> None:
        """Log what is missing when that changes; while it does not, again after a pause that
        doubles, so a process waiting long for its indexes does not fill the log every second."""
        now = time.monotonic()
        if missing != self._missing:
            self._missing, self._warning_every_s = missing, WARNING_FIRST_S
        elif now < self._next_warning:
            return
        else:
            self._warning_every_s = min(self._warning_every_s * 2, WARNING_MAX_S)
        self._next_warning = now + self._warning_every_s
        log.warning("NOT_SERVING until they exist: %s", missing)
