"""Runs the metrics service: python -m services.metrics."""

import asyncio

from sanad import runtime
from sanad.telemetry import logs
from services.metrics.app import build_app
from services.metrics.settings import MetricsSettings


async def serve(stop: asyncio.Event, settings: MetricsSettings) -> None:
    """Serve until stop is set, then drain."""
    logs.configure("metrics", settings.log_level, settings.log_plain)
    await runtime.serve_app(
        "metrics",
        build_app(settings),
        settings.metrics_port,
        settings.metrics_metrics_port,
        stop,
        settings=settings,
    )


def main() -> None:
    """Console script entry point."""
    settings = runtime.load_settings("metrics", MetricsSettings)
    runtime.run(lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
