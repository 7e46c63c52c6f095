"""Starts SecantusDB, a MongoDB-wire server, as a separate process for development and tests.

SecantusDB is GPL-2.0 and an optional dev extra: it is only ever run as
`python -m secantus`, never imported.
"""

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sanad.devstack.orphans import guarded

# Holds the sitecustomize.py that tunes the server's garbage collector.
SITE = Path(__file__).with_name("secantus_site")


class MongoServerError(RuntimeError):
    """The development MongoDB-wire server could not be started."""


# Ports handed out below the kernel's ephemeral range start here.
LOWEST_PORT = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PORT_ATTEMPTS = 1000
_handed_out: set[int] = set()


def free_port(count: int = 1, step: int = 1) -> int:
    """A TCP port nobody listens on right now, for a process about to listen on it; with count,
    the first of count such ports step apart (the ingest workers' ports, layout.child_env).

    Chosen below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be taken as the source port of any outgoing connection between this check and
    the listener's bind, and the tests open thousands of those. Below it only another listener
    can take it. A port is handed out once per process.
    """
    rng = random.SystemRandom()
    highest = _first_ephemeral_port() - 1
    for _ in range(PORT_ATTEMPTS):
        first = rng.randint(LOWEST_PORT, highest - step * (count - 1))
        series = range(first, first + step * count, step)
        if all(_free(port) for port in series):
            _handed_out.update(series)
            return first
    raise MongoServerError(f"no free port between {LOWEST_PORT} and {highest}")


def _free(port: int) -> bool:
    """Whether port is not handed out yet and nobody listens on it."""
    if port in _handed_out:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _first_ephemeral_port() -> int:
    """The lowest port the kernel picks for outgoing connections (32768 when unknown)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def start(
    port: int,
    storage: str | Path,
    log_path: Path | None = None,
    tls: tuple[Path, Path] | None = None,
    test_commands: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the server on 127.0.0.1:port, storage a folder or ':memory:'; wait for it.

    With tls (a certificate and its key), the server speaks TLS only. test_commands turns on
    configureFailPoint and its kind, for tests that make the database refuse; never otherwise.
    A port another server listens on is refused: what answers there would not be this one.

    The server runs in a session of its own, so a Ctrl-C at the terminal reaches only its
    starter, which stops it after the processes that use it; it dies with its starter.
    """
    _refuse_taken(port)
    if str(storage) != ":memory:":
        Path(storage).mkdir(parents=True, exist_ok=True)
    output = log_path.open("ab") if log_path else subprocess.DEVNULL
    written_before = log_path.stat().st_size if log_path else 0
    tls_flags = (
        [] if tls is None else ["--tls-cert-file", str(tls[0]), "--tls-key-file", str(tls[1])]
    )
    process = subprocess.Popen(
        guarded(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(storage),
                "--log-level",
                "WARNING",
                # Standalone: SecantusDB then writes no oplog, which it keeps only for change
                # streams (nothing here uses them; the registry's watch streams read its own change
                # documents). The oplog entry of every write was a fifth of SecantusDB's CPU per
                # submission. Multi-document transactions still run on it (unlike a standalone
                # mongod); production's MongoDB is a replica set.
                "--standalone",
                # Every commit reaches the disk before it is acknowledged, as MongoDB's journal
                # makes a majority write durable: without it a killed SecantusDB lost the writes
                # of its last tens of milliseconds, acknowledged ones among them (a claimed
                # request id then got a second transaction id on retry).
                "--sync-on-commit",
                *tls_flags,
                *(["--enable-test-commands"] if test_commands else []),
            ],
            signal.SIGKILL,
        ),
        env=server_env(),
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MongoServerError(
                f"SecantusDB exited with code {process.returncode}"
                + _last_words(log_path, written_before)
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        if process.poll() is None:  # and not another server that took the port meanwhile
            return process
    process.kill()
    raise MongoServerError(f"SecantusDB did not listen on port {port} within 30s")


def _last_words(log_path: Path | None, offset: int) -> str:
    """The last two lines this run wrote to its log, traceback frames left out, and where the
    rest is: a locked or broken data folder says so there."""
    if log_path is None:
        return ""
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    said = [
        re.sub(r"^(\[[^]]*\])+, ", "", line.strip())  # WiredTiger's time and thread
        for line in text.splitlines()
        if line.strip() and not line[:1].isspace() and not line.startswith("Traceback")
    ]
    if not said:
        return f" (its log, {log_path}, is empty)"
    return f": {' / '.join(said[-2:])} (more in {log_path})"


def _refuse_taken(port: int) -> None:
    """MongoServerError when another server listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        # As a server binds: connections of an earlier server on it, closing, do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise MongoServerError(
                f"port {port} is taken ({error.strerror or error}): another server listens "
                "there; stop it, or choose another port (SANAD_DEVSTACK_MONGO_PORT)"
            ) from None


def server_env() -> dict[str, str]:
    """The server's environment: ours, with secantus_site/sitecustomize.py on its path."""
    path = [str(SITE), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def url(port: int) -> str:
    """The connection string of a server started by start().

    Without retryable writes: SecantusDB 0.7.0b3 keeps a record of every retryable write for
    30 minutes, up to 10,000, and scans them all on every write (sorting them once full). That
    was a third of its time at half the unary load, and latencies grew through a run.
    Production's MongoDB URLs keep retryable writes. On loopback a write fails on the network
    only when the server restarts, when a retry would mostly fail as well; each writer then
    does what it does in an outage (intake answers UNAVAILABLE, the workers redeliver, and the
    audit log logs the event it could not write).
    """
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
