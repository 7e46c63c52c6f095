"""Runs the intake service: python -m services.intake."""

import asyncio

from sanad import runtime
from sanad.telemetry import logs
from services.intake.app import build_app
from services.intake.settings import IntakeSettings


async def serve(stop: asyncio.Event, settings: IntakeSettings) -> None:
    """Serve until stop is set, then drain."""
    logs.configure("intake", settings.log_level, settings.log_plain)
    await runtime.serve_app(
        "intake",
        build_app(settings),
        settings.intake_port,
        settings.intake_metrics_port,
        stop,
        settings=settings,
    )


def main() -> None:
    """Console script entry point."""
    settings = runtime.load_settings("intake", IntakeSettings)
    runtime.run(lambda stop: serve(stop, settings), use_uvloop=settings.use_uvloop)


if __name__ == "__main__":
    main()
