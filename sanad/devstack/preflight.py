"""Checks before starting the stack, each answering with a one-line problem or None."""

import asyncio
import contextlib
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity
from pydantic import ValidationError
from pymongo.errors import OperationFailure, PyMongoError

from sanad import mongo
from sanad.amqp.connecting import CONNECT_TIMEOUT_S, connect
from sanad.amqp.topology import Topology
from sanad.cli.broker import failure
from sanad.runtime import StartupError
from sanad.settings import CommonSettings


def amqp_problem(amqp_url: str, prefix: str = "sanad") -> str | None:
    """Why RabbitMQ at amqp_url cannot be reached or used by a stack with this queue prefix,
    or None when it lets us in and no one else consumes the stack's work queues."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError as error:
        return f"SANAD_AMQP_URL has no valid port ({error})"
    if parts.scheme not in ("amqp", "amqps"):
        return "SANAD_AMQP_URL is not an amqp:// or amqps:// URL: fix SANAD_AMQP_URL"
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as error:
        return (
            f"RabbitMQ is not reachable at {host}:{port} ({error.strerror or error}). "
            "Start it (e.g. `rabbitmq-server -detached`) or set SANAD_AMQP_URL."
        )
    return login_problem(amqp_url, f"{host}:{port}", prefix)


def login_problem(amqp_url: str, where: str, prefix: str = "sanad") -> str | None:
    """Why RabbitMQ at `where` does not let the stack in (a wrong password, a vhost the user
    may not use, a port that does not speak AMQP), or None: the processes would otherwise start
    and retry that login for ever, each logging it, while `make run` looked healthy."""
    try:
        consumed = asyncio.run(_consumed(amqp_url, Topology(prefix)))
    except _Unanswered:
        return (
            f"RabbitMQ at {where} let the stack in, then did not answer within"
            f" {CONNECT_TIMEOUT_S:g} s when asked about the stack's queues: it is overloaded or"
            " stuck; check it (`rabbitmq-diagnostics status`) and run again"
        )
    except Exception as error:  # every failure here is told in one line
        why = failure(error, "the login", amqp_url)
        return (
            f"RabbitMQ at {where} does not let the stack in ({why}):"
            " fix SANAD_AMQP_URL (user, password, vhost, port)"
        )
    if consumed:
        queue, consumers = consumed
        return (
            f"{queue} on RabbitMQ at {where} has {consumers} consumer(s) already, another"
            " make run's workers most likely: they would take this stack's messages and store"
            " them in their own database. Stop it, or give this stack its own SANAD_AMQP_PREFIX"
        )
    return None


class _Unanswered(Exception):
    """The broker let the stack in, then did not answer its questions in time."""


async def _consumed(amqp_url: str, topology: Topology) -> tuple[str, int] | None:
    """Log in, then the first of the stack's work queues that has consumers, with how many;
    None when none has (or none exists yet). The login, the questions and the goodbye are
    each bounded in time: a broker that let the stack in and then answered no channel held
    `make run` for ever, silent."""
    connection = await connect(amqp_url, name="sanad devstack preflight")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            return await _first_consumed(connection, topology)
    except TimeoutError:
        raise _Unanswered from None
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await connection.close()


async def _first_consumed(
    connection: AbstractConnection, topology: Topology
) -> tuple[str, int] | None:
    """The first of the stack's work queues that has consumers, with how many."""
    for queue in (topology.ingest_queue, topology.batch_queue):
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:  # the broker closed that channel: no such queue yet
            continue
        await channel.close()
        consumers = declared.declaration_result.consumer_count
        if consumers:
            return queue, consumers
    return None


def mongo_problem() -> str | None:
    """Why the MongoDB that SANAD_MONGO_URL names does not answer a ping within
    SANAD_MONGO_TIMEOUT_MS, or None when it does: the processes would otherwise start and wait
    for it for ever, each logging that it does not answer yet, while `make run` looked healthy.
    Settings the processes would refuse, a URL pymongo cannot read among them, are left to
    them: each names every problem it has."""
    try:
        settings = CommonSettings()
    except ValidationError:
        return None
    hosts = urlsplit(settings.mongo_url).netloc.rpartition("@")[2]  # never the password
    try:
        asyncio.run(_ping(settings))
    except StartupError as error:  # a TLS file or an option the processes would refuse too
        return str(error)
    except OperationFailure as error:
        reason = (error.details or {}).get("errmsg") or str(error)
        return f"MongoDB at {hosts} refused the stack ({reason}): fix SANAD_MONGO_URL"
    except PyMongoError as error:
        seconds = settings.mongo_timeout_ms / 1000
        return (
            f"MongoDB at {hosts} does not answer within {seconds:g} s ({type(error).__name__}):"
            " start it, or fix SANAD_MONGO_URL (unset, `make run` starts its own)"
        )
    return None


async def _ping(settings: CommonSettings) -> None:
    """One ping through a client made as the processes make theirs."""
    client = mongo.connect(settings, "sanad devstack preflight")
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


def taken_port_problem(ports: Iterable[tuple[str, str, int]]) -> str | None:
    """Every (child, variable, port) that another program listens on, named with the variable
    that moves it, in one line (the first alone left an operator moving one port a run); None
    when every port is free.

    Probed as the children bind (every address, SO_REUSEADDR): a closing connection on a port
    does not count, a listener on any address does.
    """
    taken = []
    for child, variable, port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))  # every address, as the children bind
            except OverflowError:  # an extra ingest worker's, 10 per worker above the first's
                return f"port {port} ({child}, {variable}) is above 65535: lower {variable}"
            except OSError as error:
                why = error.strerror or str(error)
                taken.append((f"{port} ({child}, {variable})", variable, why))
    if not taken:
        return None
    if len(taken) == 1:
        named, variable, why = taken[0]
        return (
            f"port {named} is taken ({why}):"
            f" another program listens there; stop it, or move it with {variable}"
        )
    return (
        f"ports {', '.join(named for named, _, _ in taken)} are taken: other programs listen"
        " there (another make run?); stop them, or move each with its variable"
    )
