"""`make run` gives every process it starts ports of its own, however many ingest workers."""

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest
from pydantic_settings import BaseSettings

from sanad.devstack import __main__ as devstack
from sanad.devstack import layout
from sanad.devstack.layout import child_env, processes
from sanad.devstack.mongo_server import free_port
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


@pytest.mark.parametrize("workers", [1, 3])
def test_the_ports_the_devstack_checks_are_the_ones_its_children_listen_on(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"SANAD_REGISTRY_METRICS_PORT": "41101", "SANAD_INGEST_HEALTH_PORT": "41000"}
    checked = layout.listening_ports(base, workers)
    read = listening_ports(base, workers, monkeypatch)
    assert checked == [(name, f"SANAD_{field.upper()}", port) for name, field, port in read]
    assert ("registry", "SANAD_REGISTRY_METRICS_PORT", 41101) in checked


def test_a_taken_port_stops_the_stack_before_anything_starts_naming_it_and_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a child's `Address already in use` traceback after the others have started."""
    ports = layout.listening_ports({}, 1)
    for _, variable, _ in ports:  # free ports of this test's own, whatever runs beside it
        monkeypatch.setenv(variable, str(free_port()))
    monkeypatch.setenv("SANAD_DEVSTACK_DATA", str(tmp_path))
    monkeypatch.setenv("SANAD_MONGO_URL", "mongodb://127.0.0.1:1/")
    monkeypatch.setattr(devstack.preflight, "amqp_problem", lambda url, prefix: None)
    monkeypatch.setattr(devstack, "start_child", started)
    monkeypatch.setattr(devstack.mongo_server, "start", started)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        monkeypatch.setenv("SANAD_REGISTRY_METRICS_PORT", str(taken))
        with pytest.raises(SystemExit) as refused:
            devstack.main()

    assert str(refused.value.code) == (
        f"devstack: port {taken} (registry, SANAD_REGISTRY_METRICS_PORT) is taken (Address"
        " already in use): another program listens there; stop it, or move it with"
        " SANAD_REGISTRY_METRICS_PORT"
    )


def started(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("started a process although a port was taken")


def test_a_port_variable_that_is_not_a_port_is_named() -> None:
    with pytest.raises(SystemExit) as refused:
        layout.listening_ports({"SANAD_BATCH_METRICS_PORT": "9105x"}, 1)
    assert str(refused.value.code) == (
        "devstack: SANAD_BATCH_METRICS_PORT='9105x' is not a whole number from 1 to 65535"
    )


def test_an_extra_workers_port_above_65535_is_named_with_the_variable_to_lower() -> None:
    ports = layout.listening_ports({"SANAD_INGEST_METRICS_PORT": "65530"}, 2)
    problem = devstack.preflight.taken_port_problem(p for p in ports if p[0] == "ingest-2")
    assert problem == (
        "port 65540 (ingest-2, SANAD_INGEST_METRICS_PORT) is above 65535:"
        " lower SANAD_INGEST_METRICS_PORT"
    )


def test_sanadctl_is_told_every_worker_health_server_make_run_starts() -> None:
    env = {"SANAD_BATCH_HEALTH_PORT": "51062"}
    assert layout.worker_health_targets(env, 2) == (
        "ingest-1=127.0.0.1:50061,ingest-2=127.0.0.1:50071,batch=127.0.0.1:51062"
    )


def test_every_taken_port_is_named_in_one_line() -> None:
    with socket.socket() as one, socket.socket() as two:
        for other in (one, two):
            other.bind(("127.0.0.1", 0))
            other.listen()
        first, second = one.getsockname()[1], two.getsockname()[1]
        problem = devstack.preflight.taken_port_problem(
            [
                ("registry", "SANAD_REGISTRY_PORT", first),
                ("intake", "SANAD_INTAKE_PORT", free_port()),
                ("metrics", "SANAD_METRICS_METRICS_PORT", second),
            ]
        )
    assert problem == (
        f"ports {first} (registry, SANAD_REGISTRY_PORT), {second} (metrics,"
        " SANAD_METRICS_METRICS_PORT) are taken: other programs listen there (another make"
        " run?); stop them, or move each with its variable"
    )
