"""Runs the ingest worker: python -m workers.ingest."""

import asyncio
import logging

from sanad import runtime
from sanad.telemetry import logs
from sanad.telemetry.metrics import serve_metrics
from workers.ingest.app import build_app
from workers.ingest.settings import IngestSettings

log = logging.getLogger("sanad.ingest")


async def work(stop: asyncio.Event) -> None:
    """Consume until stop is set; the current micro-batch is finished and acked."""
    settings = IngestSettings()
    logs.configure("ingest", settings.log_level, settings.log_plain)
    serve_metrics(settings.ingest_metrics_port)
    app = build_app(settings)
    runner = asyncio.create_task(app.run(settings.ingest_health_port))
    await stop.wait()
    log.info("ingest draining")
    await app.stop()
    await runner
    await app.close()


def main() -> None:
    """Console script entry point."""
    runtime.run(work)


if __name__ == "__main__":
    main()
