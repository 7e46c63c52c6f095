"""`make run` refuses what it cannot run as asked, in one line, and stops when its database dies."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sanad.devstack import __main__ as devstack
from sanad.devstack import mongo_server


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SANAD_DEVSTACK_WORKERS", "two"),
        ("SANAD_DEVSTACK_WORKERS", "0"),
        ("SANAD_DEVSTACK_MONGO_PORT", "99999"),
    ],
)
def test_a_setting_that_is_not_a_number_in_range_is_named(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as refused:
        devstack.plan_from_env()
    assert str(refused.value.code).startswith(f"devstack: {variable}={value!r} is not a whole")


def test_a_port_another_server_listens_on_is_refused(tmp_path: Path) -> None:
    port = mongo_server.free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        with pytest.raises(mongo_server.MongoServerError, match=f"port {port} is taken"):
            mongo_server.start(port, ":memory:")


def test_the_database_runs_in_a_session_of_its_own() -> None:
    # A Ctrl-C at the terminal reaches the devstack alone, which stops the database last.
    database = mongo_server.start(mongo_server.free_port(), ":memory:")
    try:
        assert os.getsid(database.pid) == database.pid != os.getsid(0)
    finally:
        database.kill()
        database.wait()


def test_the_stack_stops_when_its_database_exits() -> None:
    database = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    database.wait()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert devstack._supervise([], database) == 1
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
