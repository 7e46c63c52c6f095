"""Runs one deployable's async main on one event loop until SIGTERM or SIGINT."""

import asyncio
import gc
import logging
import re
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from sanad.security.certificate_expiry import export_expiry
from sanad.settings import CommonSettings
from sanad.telemetry.metrics import serve_metrics

log = logging.getLogger("sanad.runtime")


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
# Where every process serves /metrics: all of its addresses.
METRICS_HOST = "0.0.0.0"


class StartupError(Exception):
    """A process cannot start; its message is shown to the operator as one line."""


def port_problem(
    settings: BaseSettings, port: int, what: str, host: str | None = None
) -> StartupError:
    """The one line for a port this process could not listen on at host (its gRPC host when
    None): why, as the kernel says it (another program holds it, mostly), and the settings
    that move it."""
    if host is None:
        host = str(getattr(settings, "grpc_host", METRICS_HOST))
    reason = "not available"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as trial:
        try:
            trial.bind((host, port))
        except OSError as error:
            reason = error.strerror or reason
    moved_by = [
        f"SANAD_{name.upper()}"
        for name, value in settings
        if name.endswith("_port") and value == port
    ]
    moved = f" (set {' or '.join(moved_by)} to move it)" if moved_by else ""
    return StartupError(f"cannot serve {what} on {host}:{port}: {reason}{moved}")


def serve_metrics_of(settings: CommonSettings, port: int) -> None:
    """Serve /metrics on port, or stop the process with one line naming its setting; with
    the expiry of the certificates its settings name (sanad.security.certificate_expiry)."""
    try:
        serve_metrics(port, METRICS_HOST)
    except OSError:
        raise port_problem(settings, port, "metrics", METRICS_HOST) from None
    export_expiry(settings)


def load_settings(name: str, settings: type[SettingsT]) -> SettingsT:
    """A deployable's settings, read once; refused ones print a line each and exit 2.

    Bad settings are an operator's mistake, like bad usage: each line names the variable and
    what is wrong with it, and a traceback would only bury them.
    """
    try:
        return settings()
    except ValidationError as error:
        for problem in settings_problems(error) + problems_beside(settings, error):
            print(f"{name}: cannot start: {problem}", file=sys.stderr)
        sys.exit(2)


def problems_beside(settings: type[SettingsT], error: ValidationError) -> list[str]:
    """The checks across settings that a refused setting kept from running: pydantic runs them
    only once every setting passed its own. They run again with the refused settings at their
    defaults; a line naming one of those is left out (it would judge the default, not what the
    operator set), so every other problem shows at once rather than one run at a time."""
    refused = {str(d["loc"][0]) for d in error.errors(include_url=False) if d["loc"]}
    fields = settings.model_fields
    if not refused or not refused <= set(fields):
        return []
    defaults = {key: fields[key].get_default(call_default_factory=True) for key in refused}
    try:
        settings(**defaults)
    except ValidationError as again:
        named = tuple(f"SANAD_{key.upper()}" for key in refused)
        return [problem for problem in settings_problems(again) if not _names(problem, named)]
    return []


def _names(problem: str, variables: tuple[str, ...]) -> bool:
    """Whether the line names one of the variables (as a whole name, not a prefix)."""
    return any(re.search(rf"\b{variable}\b", problem) for variable in variables)


def settings_problems(error: ValidationError) -> list[str]:
    """One line per refused setting: the SANAD_ variable and the reason, never its value."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        message = detail["msg"].removeprefix("Value error, ")
        if detail["loc"]:
            variable = f"SANAD_{str(detail['loc'][0]).upper()}"
            problems.append(f"{variable}: {message}")
        else:  # a check across settings; its messages name the variables
            problems += message.splitlines()
    return problems


def run(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *, use_uvloop: bool = True
) -> None:
    """Run main(stop) on one event loop; stop is set on SIGTERM/SIGINT.

    The loop is uvloop's when use_uvloop is true and uvloop is installed, else asyncio's own.
    """
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        try:
            runner.run(_with_signals(main))
        except StartupError as error:
            log.error("cannot start: %s", error)  # noqa: TRY400 - one line, no traceback
            sys.exit(2)


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop.new_event_loop when wanted and available; None means asyncio's default loop."""
    if not use_uvloop:
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on some platforms
    except ImportError:
        log.warning("uvloop is not installed; running on asyncio's event loop")
        return None
    return uvloop.new_event_loop


async def _with_signals(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await main(stop)


class App(Protocol):
    """A gRPC deployable: start(port) binds and returns the port, stop() drains."""

    async def start(self, port: int) -> int: ...
    async def stop(self) -> None: ...


async def serve_app(
    name: str,
    app: App,
    port: int,
    metrics_port: int,
    stop: asyncio.Event,
    *,
    settings: CommonSettings,
) -> None:
    """Serve metrics and the app until stop is set, then drain (DESIGN 5.7)."""
    serve_metrics_of(settings, metrics_port)
    bound = await app.start(port)
    # What start-up built (modules, descriptors, settings, clients) lives as long as the
    # process: frozen, full collections stop walking it, which shortens their pauses.
    gc.freeze()
    log.info("%s serving", name, extra={"port": bound, "metrics_port": metrics_port})
    await stop.wait()
    log.info("%s draining", name)
    await app.stop()
