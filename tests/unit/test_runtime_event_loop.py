"""One event loop per process (uvloop unless the setting turns it off); start-up objects frozen."""

import asyncio
import gc

import pytest
import uvloop

from sanad import runtime
from sanad.settings import ServerSettings
from services.intake import __main__ as intake_main


def loop_type_run_with(**options: bool) -> type:
    seen: list[type] = []

    async def main(stop: asyncio.Event) -> None:
        seen.append(type(asyncio.get_running_loop()))

    runtime.run(main, **options)
    return seen[0]


def test_a_process_runs_on_uvloop_by_default() -> None:
    assert issubclass(loop_type_run_with(), uvloop.Loop)


def test_turning_uvloop_off_runs_the_process_on_asyncios_own_loop() -> None:
    loop_type = loop_type_run_with(use_uvloop=False)
    assert not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.BaseEventLoop)


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("true", True)])
def test_intake_passes_sanad_use_uvloop_to_the_runtime(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    chosen: list[bool] = []
    monkeypatch.setenv("SANAD_USE_UVLOOP", value)
    monkeypatch.setattr(runtime, "run", lambda main, *, use_uvloop=True: chosen.append(use_uvloop))
    intake_main.main()
    assert chosen == [expected]


async def test_serving_an_app_freezes_what_start_up_built_for_shorter_collections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class App:
        async def start(self, port: int) -> int:
            return port

        async def stop(self) -> None:
            return None

    monkeypatch.setattr(runtime, "serve_metrics", lambda port, host: None)
    stop = asyncio.Event()
    stop.set()
    try:
        await runtime.serve_app("test", App(), 0, 0, stop, settings=ServerSettings())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
