"""Starts SecantusDB, a MongoDB-wire server, as a separate process for development and tests.

SecantusDB is GPL-2.0 and an optional dev extra: it is only ever run as its own process
(through sanad.devstack.secantus_server, which tunes the interpreter's garbage collector first),
never imported.
"""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sanad.devstack.orphans import signal_on_parent_death


class MongoServerError(RuntimeError):
    """The development MongoDB-wire server could not be started."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(port: int, storage: str | Path, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the server on 127.0.0.1:port, storage a folder or ':memory:'; wait for it."""
    if str(storage) != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    output = log_path.open("ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sanad.devstack.secantus_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        preexec_fn=signal_on_parent_death(signal.SIGKILL),  # noqa: PLW1509 - no locks involved
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MongoServerError(f"SecantusDB exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise MongoServerError(f"SecantusDB did not listen on port {port} within 30s")


def url(port: int) -> str:
    """The connection string of a server started by start()."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"
