"""Calling a consumer's handler on a micro-batch: what is retried, what is dead, what waits.

A transient failure raised by the handler (TransientError) backs off and handles the same
micro-batch again, without acking or dead-lettering anything, so a database outage never loses a
message. Any other exception is a message the handler cannot take: each message is then handled
alone, and the one that keeps failing is dead-lettered as `handler-failed` (once its queue's
on_failure, if any, has recorded it: the batch worker audits it). A broken broker
connection is nobody's message: it is raised, for the consumer to reconnect. At stop a handler
still running gets its drain grace, then is cancelled, and every backoff pause ends at once.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from sanad.amqp.verdicts import Dead, Outcome, TransientError
from sanad.telemetry.metrics import RETRIES

log = logging.getLogger("sanad.amqp.consumer")

# The reason of a message whose handling kept raising (see RetryingHandler.outcomes).
HANDLER_FAILED = "handler-failed"

# Longest wait for a handler cancelled at stop to unwind (a MongoDB transaction it held aborts
# on the way out, which waits on the database); past it the process goes on closing.
HANDLER_CANCEL_S = 1.0

# What a broken or closed broker connection raises, to a handler that replies or publishes too.
BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError)

Handler = Callable[[Sequence[AbstractIncomingMessage]], Awaitable[Sequence[Outcome]]]
# Told of a message about to be dead-lettered as handler-failed; may raise TransientError.
FailureHook = Callable[[AbstractIncomingMessage, Dead], Awaitable[None]]
Answer = TypeVar("Answer")


class RetryingHandler:
    """A queue's handler, called under the retry, isolation and drain rules above."""

    def __init__(
        self,
        handler: Handler,
        queue: str,
        *,
        max_failures: int,
        max_backoff_s: float,
        drain_grace_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.handler = handler
        self.on_failure = on_failure
        self.queue_name = queue
        self.max_failures = max_failures
        self.max_backoff_s = max_backoff_s
        self.drain_grace_s = drain_grace_s
        self.clock = clock
        # When the micro-batch in hand first failed transiently, every try of it failing since;
        # None when it has not, or when none is in hand (see failing_for_s).
        self.failing_since: float | None = None

    def failing_for_s(self) -> float:
        """How long every try of the micro-batch in hand has failed transiently; 0 when its
        latest did not, or none is in hand. A database that answers pings while every write
        times out shows here, not in a ping."""
        return 0.0 if self.failing_since is None else self.clock() - self.failing_since

    async def outcomes(
        self, batch: Sequence[AbstractIncomingMessage], stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        """The handler's outcomes; None when stopping while a dependency is down.

        A handler that raises anything but TransientError meets a message it cannot take (or
        has a bug): the micro-batch is handled again one message at a time, and a message that
        still fails alone, max_failures times, is dead-lettered as `handler-failed` with the
        error. The others are handled as usual and the worker keeps running; a worker that
        exited instead had every message it held redelivered again and again, until the
        queue's delivery limit dead-lettered the good ones with the poison, without a reason.
        """
        try:
            return await self._retried(batch, stop)
        finally:  # handled, given up at stop, or left to the broker: no longer failing
            self.failing_since = None

    async def _retried(
        self, batch: Sequence[AbstractIncomingMessage], stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        delay = 0.1
        failures = 0
        while True:
            try:
                return await self._within_grace(partial(self.handler, batch), stop)
            except TransientError as error:
                if await self._backed_off(stop, delay, "transient failure", error):
                    return None
                delay = min(delay * 2, self.max_backoff_s)
            except BROKER_ERRORS:
                raise  # the connection's fault, not the message's: reconnect, redeliver
            except Exception as error:
                if len(batch) > 1:
                    log.exception(
                        "handling a micro-batch of %d failed; handling each alone", len(batch)
                    )
                    return await self._one_by_one(batch, stop)
                failures += 1
                if failures >= self.max_failures:
                    log.exception("handling a message failed %d times", failures)
                    dead = Dead(HANDLER_FAILED, f"{type(error).__name__}: {error}")
                    return await self._given_up(batch[0], dead, stop)
                log.warning("handling a message failed (%s); trying it again", error)
                if await pause(stop, delay):
                    return None
                delay = min(delay * 2, self.max_backoff_s)

    async def _given_up(
        self, message: AbstractIncomingMessage, dead: Dead, stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        """[dead], once on_failure has recorded it (retried with backoff while it fails
        transiently); None when stopping first: the message stays unacked and returns.

        An on_failure that fails otherwise is logged and the message dead-lettered all the
        same: a record that cannot be written must not hold the queue. While it waits it is the
        micro-batch in hand, as the handler's tries are: its transient failures count towards
        the `handling` health check (failing_for_s) and the retries metric, and at stop it gets
        the drain grace, then is cancelled (it counted for neither, and held a drain for as
        long as a database that went away held it)."""
        delay = 0.1
        while self.on_failure is not None:
            try:
                await self._within_grace(partial(self.on_failure, message, dead), stop)
                break
            except TransientError as error:
                if await self._backed_off(stop, delay, "recording a failed message", error):
                    return None
                delay = min(delay * 2, self.max_backoff_s)
            except BROKER_ERRORS:
                raise
            except Exception:
                log.exception("recording a failed message failed; dead-lettering it all the same")
                break
        return [dead]

    async def _backed_off(
        self, stop: asyncio.Event, delay: float, what: str, error: TransientError
    ) -> bool:
        """After a transient failure of the micro-batch in hand: noted as failing (since the
        first), counted, logged and paused for delay; whether stopping (leave it unacked)."""
        if stop.is_set():
            return True
        if self.failing_since is None:
            self.failing_since = self.clock()
        RETRIES.labels(self.queue_name).inc()
        log.warning("%s, retrying micro-batch in %.1fs: %s", what, delay, error)
        return await pause(stop, delay)

    async def _within_grace(
        self, work: Callable[[], Awaitable[Answer]], stop: asyncio.Event
    ) -> Answer:
        """What work() (the handler, or on_failure) brings; once stop is set it has
        drain_grace_s left, then it is cancelled and TransientError raised, so the micro-batch
        stays unacked.

        A handler waiting on a database that went away (server selection, a frozen socket)
        held a SIGTERM drain for as long as MongoDB's timeouts, past a pod's grace period.
        """
        handling = asyncio.ensure_future(work())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({handling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not handling.done():
                await asyncio.wait({handling}, timeout=self.drain_grace_s)
            if handling.done():
                return handling.result()
            log.warning(
                "the handler is still running %.1fs after stop; cancelling it, its micro-batch"
                " returns to the queue",
                self.drain_grace_s,
            )
            raise TransientError("stopping")
        finally:
            stopping.cancel()
            if not handling.done():
                handling.cancel()
                await asyncio.wait({handling}, timeout=HANDLER_CANCEL_S)

    async def _one_by_one(
        self, batch: Sequence[AbstractIncomingMessage], stop: asyncio.Event
    ) -> Sequence[Outcome] | None:
        outcomes: list[Outcome] = []
        for message in batch:
            if stop.is_set():  # each would get a grace of its own: leave the rest unacked
                return None
            alone = await self.outcomes([message], stop)
            if alone is None:
                return None
            outcomes.extend(alone)
        return outcomes


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep for seconds, ended early by stop (a backoff must not hold a SIGTERM drain);
    whether stop is set."""
    sleeping = asyncio.ensure_future(asyncio.sleep(seconds))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()
        stopping.cancel()
    return stop.is_set()
