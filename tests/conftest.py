"""Fixtures shared by every tier: a real MongoDB-wire server and unique names per run."""

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sanad.amqp.topology import delete_topology
from sanad.devstack import certs, mongo_server
from sanad.telemetry import logs

AMQP_URL = os.environ.get("SANAD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def discard(server: subprocess.Popen[bytes]) -> None:
    """End a test's own SecantusDB whose data nobody reads again: SIGKILL. Asked to stop with
    SIGTERM once its clients have gone, it takes 2 s (measured), which a dozen teardowns paid
    in every run; a SIGKILL loses nothing it acknowledged (--sync-on-commit), and a test that
    stops a server to start it again still stops it as the devstack does."""
    server.kill()
    server.wait(timeout=20)


def unique(prefix: str) -> str:
    """A name no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def whole_line_budgets() -> None:
    """Every budget of failure lines whole as a test starts: a test that reads a failure's line
    must not find it left out for other tests' failures of the same second."""
    for budget in logs.BUDGETS:
        budget.reset()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server started for this test session on a free port."""
    external = os.environ.get("SANAD_TEST_MONGO_URL")
    if external:
        yield external
        return
    port = mongo_server.free_port()
    log = tmp_path_factory.mktemp("mongo") / "secantus.log"
    process = mongo_server.start(port, ":memory:", log)
    yield mongo_server.url(port)
    discard(process)


@pytest.fixture
def database_name() -> str:
    """A fresh database per test: isolation by name, not by teardown."""
    return unique("t").replace("-", "_")


@pytest.fixture
def amqp_prefix() -> Iterator[str]:
    """A fresh exchange/queue prefix per test; its quorum queues are deleted afterwards
    (best effort: hundreds of idle ones slow the shared broker down)."""
    prefix = unique("t")
    yield prefix
    with ThreadPoolExecutor(1) as pool, contextlib.suppress(Exception):
        pool.submit(asyncio.run, delete_topology(AMQP_URL, prefix)).result(timeout=30)


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev PKI `make certs` writes (CA, service, backend and client certificates, the JWT
    key pair and tokens), read-only by every test that needs certificates."""
    out = tmp_path_factory.mktemp("pki")
    certs.make_dev_pki(out)
    return out
