"""Running a worker app until SIGTERM, or until its consumer dies: then exit non-zero."""

import asyncio
import logging
from dataclasses import dataclass
from time import monotonic
from typing import Protocol

from sanad.amqp.consumer import ConsumerCancelled
from sanad.amqp.handling import BROKER_ERRORS, RetryingHandler, pause
from sanad.rpc.health import Check

log = logging.getLogger("sanad.worker")

EXIT_CONSUMER_CANCELLED = 3

# A consumer that ran this long before failing was healthy: its next retry starts at the
# shortest pause again, so a network blip a week after the last one costs 0.2s, not 5s.
HEALTHY_RUN_S = 30.0


class Consumer(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class WorkerApp(Protocol):
    async def run(self, health_port: int) -> None: ...
    async def stop(self) -> None: ...
    async def close(self) -> None: ...


async def run_until_stopped(app: WorkerApp, health_port: int, stop: asyncio.Event) -> None:
    """Run app; on stop finish and ack the current micro-batch; never idle without a consumer."""
    runner = asyncio.create_task(app.run(health_port))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({runner, stopped}, return_when=asyncio.FIRST_COMPLETED)
    log.info("draining")
    await app.stop()
    try:
        await runner
    except ConsumerCancelled as error:
        log.error("exiting: %s", error)  # noqa: TRY400 - one line, the cause is known
        raise SystemExit(EXIT_CONSUMER_CANCELLED) from error
    finally:
        stopped.cancel()
        await app.close()


@dataclass(frozen=True)
class Gate:
    """What a worker needs before it consumes: ready() True within attempt_s; `what` names it
    in the log."""

    ready: Check
    what: str
    attempt_s: float

    @property
    def answers(self) -> str:
        """`what` and its verb: "MongoDB answers", "MongoDB and the registry answer"."""
        return f"{self.what} answer" if " and " in self.what else f"{self.what} answers"


def handling_check(handling: RetryingHandler, failing_after_s: float) -> Check:
    """Health's check of the worker's own work: it fails once every try of the micro-batch in
    hand has failed transiently for failing_after_s. A ping alone said SERVING for 8 minutes
    while a loaded database timed out every write; the queue's backlog grew all the while."""

    async def handling_works() -> bool:
        return handling.failing_for_s() < failing_after_s

    return handling_works


async def wait_until_ready(gate: Gate, stopping: asyncio.Event) -> bool:
    """Before consuming: until the gate's ready() answers True, with capped backoff; False when
    stopping first.

    A worker takes messages only once it can handle them. What it takes and cannot handle stays
    unacked, and returns to the queue when the worker stops or dies: every return counts toward
    the message's delivery limit, so a worker restarted 20 times during one outage of MongoDB
    (crash loops, rolling restarts) would have the broker set good messages aside, up to its
    whole prefetch each time. Waiting here, a restart in an outage takes nothing.
    """
    delay = 0.2
    reported = ""
    while not stopping.is_set():
        try:
            async with asyncio.timeout(gate.attempt_s):
                answered = await gate.ready()
            if answered:
                if reported:
                    log.info("%s; consuming", gate.answers)
                return True
            why = "not ready"
        except Exception as error:  # the kind only: a message may carry a URL's credentials
            why = f"{type(error).__name__}"
        if why != reported:
            log.warning("not consuming until %s (%s)", gate.answers, why)
            reported = why
        await pause(stopping, delay)
        delay = min(delay * 2, 5.0)
    return False


def broker_trouble(error: BaseException) -> str:
    """A broker failure as its kind and its last argument, the broker's own words
    ("ProbableAuthenticationError: ACCESS_REFUSED - Login was refused ..."), not a repr of
    its argument tuple; the kind alone when it has no words (a TimeoutError)."""
    words = str(error.args[-1]) if error.args else ""
    return f"{type(error).__name__}: {words}" if words else type(error).__name__


async def consume_until_stopped(
    consumer: Consumer, stopping: asyncio.Event, gate: Gate | None = None
) -> None:
    """Run the consumer until stopping is set; reconnect with capped backoff after any failure.
    With a gate, every run (the first, and each after a failure) waits until it opens.

    Only ConsumerCancelled ends the loop. Anything else that escapes the consumer (its handler's
    errors never do) is logged with its traceback and retried like a lost connection: exiting
    would return the same prefetched messages to the queue, each return counting toward its
    delivery limit just as a reconnect does, and add a process restart (index build, health
    port, the orchestrator's crash-loop delay) for what may be a one-off. The consumer reports
    NOT_SERVING (connected is false) meanwhile, so a failure that persists is seen.
    """
    delay = 0.2
    while not stopping.is_set():
        if gate is not None and not await wait_until_ready(gate, stopping):
            return
        started = monotonic()
        try:
            await consumer.run(stopping)
        except ConsumerCancelled:
            raise
        except Exception as error:
            if monotonic() - started >= HEALTHY_RUN_S:
                delay = 0.2
            if isinstance(error, BROKER_ERRORS):  # TimeoutError among them, as an OSError
                # A lost connection mid-batch included: its deliveries return to the queue.
                log.warning("cannot consume (%s); retrying in %.1fs", broker_trouble(error), delay)
            else:
                log.exception("the consumer failed; retrying in %.1fs", delay)
            await pause(stopping, delay)
            delay = min(delay * 2, 5.0)
