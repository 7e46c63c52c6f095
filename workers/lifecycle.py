"""Running a worker app until SIGTERM, or until its consumer dies: then exit non-zero."""

import asyncio
import logging
from typing import Protocol

from sanad.amqp.consumer import BROKER_ERRORS, ConsumerCancelled

log = logging.getLogger("sanad.worker")

EXIT_CONSUMER_CANCELLED = 3


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


async def consume_until_stopped(consumer: Consumer, stopping: asyncio.Event) -> None:
    """Run the consumer until stopping is set; reconnect to the broker with capped backoff."""
    delay = 0.2
    while not stopping.is_set():
        try:
            await consumer.run(stopping)
        except BROKER_ERRORS as error:  # TimeoutError among them, as an OSError
            # A lost connection mid-batch included: its deliveries return to the queue.
            log.warning("cannot consume (%s); retrying in %.1fs", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
