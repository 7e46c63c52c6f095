"""`make run` gives every process it starts ports of its own, however many ingest workers."""

import os

import pytest
from pydantic_settings import BaseSettings

from sanad.devstack.__main__ import child_env, processes
from services.intake.settings import IntakeSettings
from services.metrics.settings import MetricsSettings
from services.registry.settings import RegistrySettings
from workers.batch.settings import BatchSettings
from workers.ingest.settings import IngestSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "services.registry": RegistrySettings,
    "services.intake": IntakeSettings,
    "services.metrics": MetricsSettings,
    "workers.ingest": IngestSettings,
    "workers.batch": BatchSettings,
}


def listening_ports(
    base: dict[str, str], workers: int, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str, int]]:
    """(child, setting, port) of every port each child would listen on, read as it reads them."""
    ports = []
    for name, module in processes(workers):
        with monkeypatch.context() as scope:
            scope.setattr(os, "environ", child_env(base, name))
            settings = SETTINGS[module]()
        ports += [
            (name, field, getattr(settings, field))
            for field in type(settings).model_fields
            if field.endswith("_port")
        ]
    return ports


@pytest.mark.parametrize("workers", [1, 2, 3, 9])
@pytest.mark.parametrize(
    "base",
    [
        {},
        {"SANAD_INGEST_HEALTH_PORT": "41000", "SANAD_INGEST_METRICS_PORT": "41001"},
    ],
    ids=["defaults", "ports-set"],
)
def test_no_two_processes_of_the_dev_stack_share_a_port(
    workers: int, base: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = listening_ports(base, workers, monkeypatch)
    taken: dict[int, tuple[str, str]] = {}
    for name, field, port in ports:
        assert port not in taken, f"{name} {field} and {taken[port]} both use {port}"
        taken[port] = (name, field)
    # Every ingest worker and the batch worker serve health; none was left out.
    health = [name for name, field, _ in ports if field.endswith("health_port")]
    assert health == [f"ingest-{number}" for number in range(1, workers + 1)] + ["batch"]


def test_extra_ingest_workers_step_their_ports_by_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = {
        (name, field): port
        for name, field, port in listening_ports({}, 3, monkeypatch)
        if name.startswith("ingest-")
    }
    assert ports == {
        ("ingest-1", "ingest_health_port"): 50061,
        ("ingest-1", "ingest_metrics_port"): 9104,
        ("ingest-2", "ingest_health_port"): 50071,
        ("ingest-2", "ingest_metrics_port"): 9114,
        ("ingest-3", "ingest_health_port"): 50081,
        ("ingest-3", "ingest_metrics_port"): 9124,
    }
