"""A devstack killed outright takes its services with it (they are signalled to drain)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PARENT = """
import os, sys, time
from sanad.devstack.children import start_child
child = start_child("sleeper", "tests.unit.sleeper", {**os.environ})
print(child.process.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_service_stops_when_the_devstack_that_started_it_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(child_pid):  # do not leave it behind when the assertion fails
        os.kill(child_pid, signal.SIGKILL)
    assert not _alive(child_pid)
