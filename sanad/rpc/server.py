"""Builds a grpc.aio server with health, reflection and our interceptor, and runs it to SIGTERM."""

import asyncio
import logging
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sanad.rpc.health import CappedHealth, Check, HealthReporter
from sanad.rpc.interceptors import ServerInterceptor, StopGate
from sanad.runtime import port_problem
from sanad.security.audit_log import AuditLog
from sanad.security.authenticate import Authenticator
from sanad.security.interceptor import security_interceptor
from sanad.security.tls import server_credentials
from sanad.settings import ServerSettings

log = logging.getLogger("sanad.rpc")

# Every inter-service channel pings its server this often (watch streams sit idle for hours),
# and every server accepts pings that often: both sides derive their options from this value.
KEEPALIVE_TIME_MS = 30_000
# How long a ping the server sends may go unanswered before the connection is closed.
KEEPALIVE_TIMEOUT_MS = 10_000
# A stopping server answers new calls UNAVAILABLE before gRPC stops taking them, until none has
# arrived for QUIET_S, for REFUSING_S at most (ServerInterceptor.refuse_new_calls): long enough to
# empty gRPC's queue of calls taken and not yet handled, which it would cancel.
REFUSING_S = 0.25
QUIET_S = 0.02
# How much larger than a server's request limit gRPC itself still reads a request (which ours
# then refuses, counted and audited), before it drops one unseen (start_server).
BACKSTOP = 4
# Open files a server keeps for everything but its callers' connections (connection_limit).
SPARE_FILES = 512
# Health Watch streams a server keeps open at once (sanad.rpc.health.CappedHealth).
MAX_HEALTH_WATCHES = 1000
# The largest request intake and metrics take (start_server's max_request_bytes). A valid one
# is a few kilobytes at most (a status change's 1,000-character note, ids of 128 characters);
# gRPC holds each request whole before the handler sees it, and near its 4 MiB default ten of
# one caller's streams made intake hold 4 GB.
SMALL_REQUEST_BYTES = 64 * 1024
# The largest request the registry takes. Its largest valid one is a catalogue service with
# 500 required documents of 500 characters, names of 500 and a code of 128 (AddCatalogService,
# UpdateCatalogService): 1,005,765 bytes at 4 UTF-8 bytes a character. A centre offering and
# blocking 500 codes of 128 characters is 143 KB (RegisterCenter, SetCenterServices); one sent
# back whole as GetCenter answered it, with 501 licence events of 500-character reasons that
# UpdateCenter ignores, about 1.2 MB. Twice the largest leaves room; gRPC's own backstop
# (BACKSTOP times this) is then the message limit, SANAD_GRPC_MAX_MESSAGE_BYTES.
REGISTRY_REQUEST_BYTES = 2 * 1024 * 1024


def message_options(max_bytes: int, max_receive_bytes: int | None = None) -> list[tuple[str, Any]]:
    """Explicit message size limits, the same on servers and clients unless a smaller receive
    limit is given."""
    receive = max_bytes if max_receive_bytes is None else min(max_receive_bytes, max_bytes)
    return [
        ("grpc.max_receive_message_length", receive),
        ("grpc.max_send_message_length", max_bytes),
    ]


def server_options(
    max_bytes: int,
    keepalive_ms: int = KEEPALIVE_TIME_MS,
    max_receive_bytes: int | None = None,
    max_connections: int | None = None,
) -> list[tuple[str, Any]]:
    """Every server's channel arguments: message limits, keepalive, its own port, a fixed
    receive window, and at most max_connections connections at once (None: no limit).

    gRPC itself refuses a request over max_receive_bytes (at most max_bytes) RESOURCE_EXHAUSTED
    before any of ours sees it: uncounted, unlogged, unaudited (start_server's backstop).

    gRPC grows a stream's receive window with its bandwidth-delay estimate (BDP probing) to
    megabytes: a client that sent SubmitTransactions items without reading the answers had
    gRPC hold about 35,000 items per stream beyond those intake was handling, 770 MB for one
    identity's 100 streams (a resource helper's repro). Without the probe each stream buffers
    its initial window (64 KiB): 20 such streams held 111 MB instead of 223, and streaming
    throughput did not move beyond its noise (2,430-3,025 items/s against 2,053-3,574).
    """
    return [
        *message_options(max_bytes, max_receive_bytes),
        *keepalive_server_options(keepalive_ms),
        ("grpc.so_reuseport", 0),
        ("grpc.http2.bdp_probe", 0),
        *(
            []
            if max_connections is None
            else [("grpc.max_allowed_incoming_connections", max_connections)]
        ),
    ]


def connection_limit(wanted: int, open_files: int | None = None) -> int:
    """The connections a server may hold: wanted, but never within SPARE_FILES of the process's
    open-file limit (each connection is a file; the rest serve MongoDB, the broker, metrics)."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, open_files - SPARE_FILES))


def keepalive_client_options(keepalive_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, Any]]:
    """Ping every keepalive_ms, so a dead peer or a silently dropped connection shows.

    Without max_pings_without_data=0 gRPC stops pinging after two pings on a stream that
    receives nothing, and a dropped connection under an idle watch stream would go unnoticed.
    """
    return [("grpc.keepalive_time_ms", keepalive_ms), ("grpc.http2.max_pings_without_data", 0)]


def keepalive_server_options(keepalive_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, Any]]:
    """Accept the clients' keepalive pings also on a stream that sends nothing for a long time,
    and ping the clients too.

    gRPC's default lets a client ping only every 5 minutes without data; our clients ping every
    KEEPALIVE_TIME_MS, which earned them GOAWAY "too many pings" after two strikes and dropped
    every idle watch stream. Half the interval leaves room for timer jitter.

    The server pings every keepalive_ms and closes a connection whose ping is not answered
    within KEEPALIVE_TIMEOUT_MS: with gRPC's default (a ping every 2 hours) a client that froze
    or vanished without a close held its watch streams, and their share of its identity's
    stream cap, for hours (a stopped client's ten watches kept its centre refused for the 20
    minutes a helper watched).
    """
    return [
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms // 2),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", min(KEEPALIVE_TIMEOUT_MS, keepalive_ms)),
        # The timeout the transport applies to an unanswered ping (gRPC 1.5x+: a minute by
        # default, which a frozen client's connection outlived by the keepalive timeout alone).
        ("grpc.http2.ping_timeout_ms", min(KEEPALIVE_TIMEOUT_MS, keepalive_ms)),
        ("grpc.http2.max_pings_without_data", 0),
    ]


@dataclass
class Registration:
    """One gRPC service to add: its full name and how to add its servicer."""

    full_name: str
    add: Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    """A started server, its bound port, and its health reporter."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    audit_log: AuditLog | None = None
    bookkeeping: ServerInterceptor | None = None

    async def stop(
        self, grace_s: float, notice_s: float = 0.0, draining: Callable[[], None] | None = None
    ) -> None:
        """Drain: NOT_SERVING first, still taking calls for notice_s so that probes and load
        balancers see it, then answer new calls UNAVAILABLE for a moment (refuse_new_calls),
        then let in-flight calls finish within the grace, then write the audit events still
        queued, so the caller may close MongoDB after this. `draining` runs as the drain begins:
        it ends what would otherwise run for the whole grace."""
        await self.health.shutdown()
        for task in self.tasks:
            task.cancel()
        # A check in flight (an index build, say) unwinds before the caller closes its clients.
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if notice_s > 0:
            log.info("health NOT_SERVING: taking calls for %.1f s more, then draining", notice_s)
            await asyncio.sleep(notice_s)
        if draining is not None:
            draining()
        if self.bookkeeping is not None:
            await self.bookkeeping.refuse_new_calls(REFUSING_S, QUIET_S)
        await self.server.stop(grace_s)
        if self.audit_log is not None:
            await self.audit_log.drain()


@dataclass(frozen=True)
class OwnFiles:
    """What a server reads from its files: the token keys, and its TLS credentials (None in
    plaintext)."""

    authenticator: Authenticator
    credentials: grpc.ServerCredentials | None


def read_own_files(settings: ServerSettings) -> OwnFiles:
    """Read the files a server starts with (the token keys, the TLS certificate, key and CA),
    raising StartupError naming the first bad one. A service that waits for MongoDB before it
    serves reads them first and gives them to start_server, so a bad file is told at once, not
    after the wait."""
    return OwnFiles(
        Authenticator.from_settings(settings),
        server_credentials(settings) if settings.grpc_tls else None,
    )


async def start_server(
    settings: ServerSettings,
    port: int,
    registrations: Sequence[Registration],
    checks: dict[str, Check],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    *,
    audit_log: AuditLog | None = None,
    name: str = "",
    keepalive_ms: int = KEEPALIVE_TIME_MS,
    files: OwnFiles | None = None,
    max_request_bytes: int | None = None,
) -> RunningServer:
    """Start serving on port (0 picks a free one); health starts NOT_SERVING.

    Every call passes the bookkeeping interceptor, then the security interceptor (identity,
    rate limit, policy table, audit trail into audit_log when given), then the gate that
    refuses calls while the server stops (StopGate), then `interceptors`.
    Clients may ping every keepalive_ms (tests pass a short one). A request larger than
    max_request_bytes is refused INVALID_ARGUMENT as undecodable, counted and audited as any
    refusal; gRPC drops one larger than BACKSTOP times that before it is read (server_options),
    so a caller's calls and streams make the process hold little more than the limit each.
    `files` are read here when not given (read_own_files).
    """
    if files is None:
        files = read_own_files(settings)
    bookkeeping = ServerInterceptor(max_request_bytes)
    bookkeeping.prepare(
        [r.full_name for r in registrations]
        + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    )
    server = grpc.aio.server(
        interceptors=[
            bookkeeping,
            security_interceptor(settings, files.authenticator, audit_log, name),
            StopGate(bookkeeping),
            *interceptors,
        ],
        options=server_options(
            settings.grpc_max_message_bytes,
            keepalive_ms,
            None if max_request_bytes is None else BACKSTOP * max_request_bytes,
            connection_limit(settings.grpc_max_connections),
        ),
    )
    for registration in registrations:
        registration.add(server)
    health_servicer = CappedHealth(MAX_HEALTH_WATCHES)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.full_name for r in registrations]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    reporter = HealthReporter(health_servicer, names, checks)
    await reporter.publish(False)
    address = f"{settings.grpc_host}:{port}"
    try:
        if files.credentials is not None:
            bound = server.add_secure_port(address, files.credentials)
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:  # gRPC's "Failed to bind", whatever the cause
        raise port_problem(settings, port, "gRPC") from None
    await server.start()
    running = RunningServer(server, bound, reporter, audit_log=audit_log, bookkeeping=bookkeeping)
    running.tasks.append(asyncio.create_task(reporter.run()))
    log.info("gRPC listening on port %s (%s)", bound, _describe(settings))
    return running


def _describe(settings: ServerSettings) -> str:
    """How the port is protected, for the start-up log line."""
    if not settings.grpc_tls:
        transport = f"plaintext, {settings.profile} profile"
    elif settings.tls_client_auth:
        transport = "mutual TLS"
    else:
        transport = "TLS"
    return f"{transport}, auth {settings.auth_mode}"
