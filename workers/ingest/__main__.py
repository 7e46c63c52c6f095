"""Runs the ingest worker: python -m workers.ingest."""

import asyncio

from sanad import runtime
from sanad.telemetry import logs
from workers.ingest.app import build_app
from workers.ingest.settings import IngestSettings
from workers.lifecycle import run_until_stopped


async def work(stop: asyncio.Event, settings: IngestSettings) -> None:
    """Consume until stop is set; the current micro-batch is finished and acked."""
    logs.configure("ingest", settings.log_level, settings.log_plain)
    runtime.serve_metrics_of(settings, settings.ingest_metrics_port)
    await run_until_stopped(build_app(settings), settings.ingest_health_port, stop)


def main() -> None:
    """Console script entry point."""
    settings = runtime.load_settings("ingest", IngestSettings)
    runtime.run(lambda stop: work(stop, settings))


if __name__ == "__main__":
    main()
