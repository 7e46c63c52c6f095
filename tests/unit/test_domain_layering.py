"""The rules import no transport or driver (DESIGN section 4, STYLE point 3): each domain module,
imported alone in a fresh interpreter, loads neither grpc, pymongo nor aio_pika. Before session 28
the ingest worker's pure change rules pulled in aio-pika and the batch worker's rules pymongo
too, through shared modules that did two jobs."""

import pkgutil
import subprocess
import sys

import pytest

import sanad.domain

DOMAIN_MODULES = [
    *(f"sanad.domain.{module.name}" for module in pkgutil.iter_modules(sanad.domain.__path__)),
    "sanad.amqp.verdicts",
    "sanad.records",
    "services.registry.domain",
    "services.metrics.domain",
    "workers.batch.domain",
    "workers.ingest.changes",
]
TRANSPORTS = ("grpc", "pymongo", "aio_pika")


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_a_domain_module_imports_no_transport_or_driver(module: str) -> None:
    probe = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        f"print(','.join(m for m in {TRANSPORTS!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"{module} loads {loaded}"
