"""Runs the batch worker: python -m workers.batch."""

import asyncio

from sanad import runtime
from sanad.telemetry import logs
from workers.batch.app import build_app
from workers.batch.settings import BatchSettings
from workers.lifecycle import run_until_stopped


async def work(stop: asyncio.Event, settings: BatchSettings) -> None:
    """Consume until stop is set; the current batch is finished and acked."""
    logs.configure("batch", settings.log_level, settings.log_plain)
    runtime.serve_metrics_of(settings, settings.batch_metrics_port)
    await run_until_stopped(build_app(settings), settings.batch_health_port, stop)


def main() -> None:
    """Console script entry point."""
    settings = runtime.load_settings("batch", BatchSettings)
    runtime.run(lambda stop: work(stop, settings))


if __name__ == "__main__":
    main()
