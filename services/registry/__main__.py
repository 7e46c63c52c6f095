"""Runs the registry service: python -m services.registry."""

import asyncio

from sanad import runtime
from sanad.telemetry import logs
from services.registry.app import build_app
from services.registry.settings import RegistrySettings


async def serve(stop: asyncio.Event, settings: RegistrySettings) -> None:
    """Serve until stop is set, then drain."""
    logs.configure("registry", settings.log_level, settings.log_plain)
    await runtime.serve_app(
        "registry",
        build_app(settings),
        settings.registry_port,
        settings.registry_metrics_port,
        stop,
        settings=settings,
    )


def main() -> None:
    """Console script entry point."""
    settings = runtime.load_settings("registry", RegistrySettings)
    runtime.run(lambda stop: serve(stop, settings))


if __name__ == "__main__":
    main()
