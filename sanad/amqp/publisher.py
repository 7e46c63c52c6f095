"""Publishing with publisher confirms and mandatory routing over a self-healing connection."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from sanad.amqp.topology import CONTENT_TYPE, Topology
from sanad.errors import Unavailable
from sanad.telemetry.logs import LineBudget
from sanad.telemetry.metrics import AMQP_PUBLISH_SECONDS, AMQP_PUBLISHED

log = logging.getLogger("sanad.amqp")

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
# What aio-pika and aiormq raise when the broker or the connection fails us.
_BROKER_ERRORS = (TimeoutError, aio_pika.exceptions.AMQPError, OSError)
# The clients raise plain RuntimeErrors for a connection or channel that is closed or not open
# (aiormq's ChannelInvalidStateError, aio-pika's "Connection was not opened"); one raised in
# our own code is a bug, which must not pass for the broker's trouble.
_CLIENT_MODULES = ("aio_pika", "aiormq", "pamqp")
# Lines of failed publishes: at most 10 a second for each exchange and kind of failure (a slow
# or full broker fails every publish; sanad_amqp_published_total counts them all).
FAILURE_LINES = LineBudget(lines=10, per_s=1.0)


class ConfirmedPublisher:
    """Returns from publish() only once the broker confirmed the message.

    Connects in the background with backoff so a process starts (NOT_SERVING)
    while the broker is away and recovers by itself when it returns. While the
    broker is unreachable or blocks publishers, publish() raises Unavailable
    quickly instead of hanging.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        timeout_s: float = 5.0,
        name: str = "sanad",
        *,
        user_id: str | None = None,
    ) -> None:
        self.url = url
        self.topology = topology
        self.timeout_s = timeout_s
        # Set on every message unless a publish names another: the broker refuses a user_id
        # that is not the connection's user, so a consumer knows who published it.
        self.user_id = user_id
        # Shown by the broker (client property connection_name), so operators can find it.
        self.name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._metrics: dict[str, _Outcomes] = {}
        # Its series exist at zero from the start: an alert reads their increase(), which a
        # series born at its first publish never shows (a restarted intake's first refusal).
        self._outcomes(topology.transactions_exchange)
        self._connected = asyncio.Event()
        # Message ids of the publishes awaiting their confirm, each with the event its end sets.
        self._settling: dict[str, asyncio.Event] = {}

    async def connect(self) -> None:
        """Connect and declare the topology, retrying with backoff until it works."""
        delay = 0.2
        while True:
            try:
                await self._open()
            except BaseException as error:
                if not _from_broker(error):
                    raise
                log.warning("cannot reach RabbitMQ, retrying in %.1fs: %s", delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

    async def _open(self) -> None:
        connection = await aio_pika.connect_robust(
            self.url,
            timeout=self.timeout_s,
            # Try again every second once the broker drops us, so recovery is quick.
            reconnect_interval=1.0,
            client_properties={"connection_name": self.name},
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await self.topology.declare(channel)
        except BaseException:
            # A robust connection keeps reconnecting until it is closed: left open, every
            # retry of connect() would add one more to the broker.
            await self._close_quietly(connection)
            raise
        self._connection, self._channel = connection, channel
        self._connected.set()
        log.info("connected to RabbitMQ")

    async def _close_quietly(self, connection: AbstractRobustConnection) -> None:
        """Close a connection we give up on, within the timeout; its own failure is only logged."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await connection.close()
        except Exception as error:
            log.warning("closing a failed RabbitMQ connection failed too: %r", error)

    async def close(self) -> None:
        """Close the connection; pending confirms fail."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await connection.close()

    def is_healthy(self) -> bool:
        """Connected, channel open, and the broker is not blocking publishers."""
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or connection.is_closed or channel.is_closed:
            return False
        return not _is_blocked(connection)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Publish persistently; raise Unavailable unless the broker confirmed in time.

        Straight to the aiormq channel under aio-pika's robust channel, with the properties
        aio_pika.Message would build: one message object fewer per publish on the hot path.
        """
        outcomes = self._outcomes(exchange)
        if not self.is_healthy():
            outcomes.unavailable.inc()
            raise Unavailable("the message broker is unavailable; retry later")
        limit = self.timeout_s if timeout_s is None else min(self.timeout_s, timeout_s)
        if limit <= 0:
            outcomes.unavailable.inc()
            raise Unavailable("no time left of the caller's deadline to publish")
        properties = aiormq.spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            headers=dict(headers or {}),
            message_id=message_id,
            message_type=message_type,
            reply_to=reply_to,
            correlation_id=correlation_id,
            user_id=user_id or self.user_id,
            timestamp=datetime.now(UTC),
        )
        started = time.perf_counter()
        try:
            assert self._channel is not None
            # asyncio.timeout, not wait_for: no extra task per publish.
            async with asyncio.timeout(limit), self._alone(message_id):
                # After the wait: the connection may have been replaced meanwhile.
                channel = await self._channel.get_underlay_channel()
                await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                )
        except BaseException as error:
            if not _from_broker(error):
                raise
            raise _failed(outcomes, exchange, error) from error
        outcomes.confirmed.inc()
        outcomes.seconds.observe(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def _alone(self, message_id: str) -> AsyncIterator[None]:
        """Wait until no other publish with this message id awaits its confirm, then hold the id.

        aiormq matches a message the broker returns (unroutable) to its publish by message id,
        one publish per id: with two in flight under one id (a rating sent again while its
        first publish awaits its confirm), the first's return would fail the second and the
        first would be answered as confirmed, though no queue took it. (aiormq gives a
        publish without an id one of its own.)
        """
        if not message_id:
            yield
            return
        while (ahead := self._settling.get(message_id)) is not None:
            await ahead.wait()
        settled = self._settling[message_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._settling[message_id]
            settled.set()

    def _outcomes(self, exchange: str) -> "_Outcomes":
        """The exchange's metric children, looked up once instead of on every publish."""
        found = self._metrics.get(exchange)
        if found is None:
            found = self._metrics[exchange] = _Outcomes(exchange)
        return found


class _Outcomes:
    """Counters and the confirm-time histogram of one exchange."""

    def __init__(self, exchange: str) -> None:
        self.confirmed = AMQP_PUBLISHED.labels(exchange, "confirmed")
        self.failed = AMQP_PUBLISHED.labels(exchange, "failed")
        self.refused = AMQP_PUBLISHED.labels(exchange, "refused")
        self.unavailable = AMQP_PUBLISHED.labels(exchange, "unavailable")
        self.seconds = AMQP_PUBLISH_SECONDS.labels(exchange)


def _failed(outcomes: _Outcomes, exchange: str, error: BaseException) -> Unavailable:
    """Count and log a publish the broker did not confirm; the error to raise for it."""
    refused = refusal(error)
    if refused is not None:
        outcomes.refused.inc()
        if (extra := FAILURE_LINES.fields((exchange, "refused"))) is not None:
            log.warning("publish to %s refused: %s", exchange, refused, extra=extra)
        return Unavailable(f"the message broker refused the message: {refused}; retry later")
    outcomes.failed.inc()
    if (extra := FAILURE_LINES.fields((exchange, "failed"))) is not None:
        log.warning("publish to %s failed: %r", exchange, error, extra=extra)
    return Unavailable("the message broker did not confirm; retry later")


def refusal(error: BaseException) -> str | None:
    """Why the broker refused a publish, when it did (returned or nacked it); None otherwise.

    A work queue whose length limit is reached (the deploy policies bound them) nacks new
    messages while its overflow is reject-publish, as a quorum queue without a leader does.
    """
    if isinstance(error, aiormq.exceptions.PublishError):
        return "no queue is bound to take it"
    if isinstance(error, aiormq.exceptions.DeliveryError) and isinstance(
        error.frame, aiormq.spec.Basic.Nack
    ):
        return "its queue is full (its workers are behind) or has no leader"
    return None


def _from_broker(error: BaseException) -> bool:
    """Whether an error out of aio-pika/aiormq is the broker's or the connection's trouble,
    not our task being cancelled or a bug of ours."""
    if isinstance(error, asyncio.CancelledError):
        # Unless our own task is being cancelled (its caller gave up, or shutdown): aiormq
        # fails pending futures with CancelledError when a connection is closed with its
        # default exc or force-closed.
        task = asyncio.current_task()
        return task is not None and task.cancelling() == 0
    # A bare Exception is aiormq's placeholder when it fails pending futures without a reason
    # (seen on a publish's write while the connection closed).
    if isinstance(error, RuntimeError):
        return isinstance(
            error, aiormq.exceptions.ChannelInvalidStateError
        ) or _raised_in_the_client(error)
    return isinstance(error, _BROKER_ERRORS) or type(error) is Exception


def _raised_in_the_client(error: BaseException) -> bool:
    """Whether the frame that raised `error` is aio-pika's, aiormq's or pamqp's."""
    trace = error.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    module = str(trace.tb_frame.f_globals.get("__name__", ""))
    return module.split(".", 1)[0] in _CLIENT_MODULES


def _is_blocked(connection: AbstractRobustConnection) -> bool:
    """Whether the broker sent connection.blocked (memory or disk alarm) and not yet unblocked.

    aiormq keeps this only as a private event that its ready() waits on; reading it is
    the one way to report the state before a publish hangs on it.
    """
    transport = getattr(connection, "transport", None)
    amqp = getattr(transport, "connection", None)
    unblocked = getattr(amqp, "_Connection__connection_unblocked", None)
    return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()
