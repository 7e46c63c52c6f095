"""What `make run` starts: its children, each one's environment, and every port they listen on."""

import os
import sys
from collections.abc import Mapping

from sanad.devstack import secure
from sanad.settings import ServerSettings
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

# The first ingest worker's ports, the settings' own defaults; extra workers count up from them.
INGEST_HEALTH_PORT: int = IngestSettings.model_fields["ingest_health_port"].default
INGEST_METRICS_PORT: int = IngestSettings.model_fields["ingest_metrics_port"].default
# Ingest worker N serves health and metrics INGEST_PORT_STEP * (N - 1) above the first one's: a
# step of 1 would give worker 2 the batch worker's health port (50061 + 1 = 50062).
INGEST_PORT_STEP = 10
MAX_INGEST_WORKERS = 9
# Each child's settings, whose *_port fields are every port the stack listens on.
SETTINGS: dict[str, type[ServerSettings]] = {
    "services.registry": RegistrySettings,
    "services.intake": IntakeSettings,
    "services.metrics": MetricsSettings,
    "workers.ingest": IngestSettings,
    "workers.batch": BatchSettings,
}


def number_setting(
    variable: str, default: int, lowest: int, highest: int, env: Mapping[str, str] = os.environ
) -> int:
    """A whole-number setting, or SystemExit naming it when it is not one in its range."""
    raw = env.get(variable, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        sys.exit(f"devstack: {variable}={raw!r} is not a whole number from {lowest} to {highest}")
    return value


def processes(workers: int) -> list[tuple[str, str]]:
    """(name, module) of every child, in start order, with `workers` ingest workers."""
    ingest = [(f"ingest-{number}", "workers.ingest") for number in range(1, workers + 1)]
    return [
        ("registry", "services.registry"),
        ("metrics", "services.metrics"),
        ("intake", "services.intake"),
        *ingest,
        ("batch", "workers.batch"),
    ]


def listening_ports(env: dict[str, str], workers: int) -> list[tuple[str, str, int]]:
    """(child, variable, port) of every port the children will listen on, as they read them;
    SystemExit naming a port variable that is not a port."""
    for fields in SETTINGS.values():
        for field, info in fields.model_fields.items():
            if field.endswith("_port"):
                number_setting(f"SANAD_{field.upper()}", info.default, 1, 65535, env)
    ports = []
    for name, module in processes(workers):
        child = child_env(env, name)
        ports += [
            (name, f"SANAD_{field.upper()}", int(child.get(f"SANAD_{field.upper()}", info.default)))
            for field, info in SETTINGS[module].model_fields.items()
            if field.endswith("_port")
        ]
    return ports


def worker_health_targets(env: dict[str, str], workers: int) -> str:
    """NAME=HOST:PORT of each worker's health server, comma separated: what `sanadctl health`
    checks besides the services (SANAD_WORKER_TARGETS in sanadctl.env)."""
    return ",".join(
        f"{name}=127.0.0.1:{port}"
        for name, variable, port in listening_ports(env, workers)
        if variable.endswith("_HEALTH_PORT")
    )


def child_env(env: dict[str, str], name: str) -> dict[str, str]:
    """One child's environment: its own certificate, and distinct ports for extra workers
    (INGEST_PORT_STEP apart)."""
    child = dict(env)
    if name.startswith("ingest-"):
        offset = INGEST_PORT_STEP * (int(name.removeprefix("ingest-")) - 1)
        for key, default in (
            ("SANAD_INGEST_HEALTH_PORT", INGEST_HEALTH_PORT),
            ("SANAD_INGEST_METRICS_PORT", INGEST_METRICS_PORT),
        ):
            if offset:
                child[key] = str(int(env.get(key, default)) + offset)
    child.update(secure.service_files(env, name))
    return child
