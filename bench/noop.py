"""`python -m bench.noop PORT`: the no-op intake ceiling as a process of its own.

Started the way intake is: intake's settings from the same environment, the same
runtime (one event loop, uvloop unless SANAD_USE_UVLOOP=false), the same server
builder with the same interceptors, its own CPU apart from the load generator's.
"""

import asyncio
import gc
import sys

from bench.ceilings import start_noop_server
from sanad import runtime
from sanad.telemetry import logs
from services.intake.settings import IntakeSettings


async def serve(stop: asyncio.Event, settings: IntakeSettings, port: int) -> None:
    """Serve the no-op intake on port until stop is set."""
    logs.configure("noop", settings.log_level, settings.log_plain)
    running = await start_noop_server(settings, port)
    gc.freeze()  # as intake does once started (sanad.runtime.serve_app)
    await stop.wait()
    await running.stop(0.5)


def main() -> None:
    settings = IntakeSettings()
    port = int(sys.argv[1])
    runtime.run(lambda stop: serve(stop, settings, port), use_uvloop=settings.use_uvloop)


if __name__ == "__main__":
    main()
