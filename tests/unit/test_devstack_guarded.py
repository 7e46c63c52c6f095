"""A child started through orphans.guarded is the command itself, and dies with its parent
(the prctl path: the parent is killed after the exec)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sanad.devstack.orphans import guarded

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

PARENT = """
import signal, subprocess, sys, time
from sanad.devstack.orphans import guarded
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
child = subprocess.Popen(guarded(sleeper, signal.SIGKILL))
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def runs_the_sleeper(pid: int) -> bool:
    """Once the guard has exec'd: the process is the command itself, no guard in between (the
    guard's own command line holds the command too, after the guard's code)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv[1:3] == [b"-c", b"import time; time.sleep(60)"]:
            return True
        time.sleep(0.05)
    return False


def test_the_popen_process_runs_the_command_itself() -> None:
    child = subprocess.Popen(
        guarded([sys.executable, "-c", "import time; time.sleep(60)"], signal.SIGTERM)
    )
    try:
        assert runs_the_sleeper(child.pid)
    finally:
        child.terminate()
        assert child.wait(timeout=10) == -signal.SIGTERM


def test_the_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, env={**os.environ}
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # Killed before the exec, the guard ends itself (it checks its parent after the prctl);
    # after it, only the kernel's parent-death signal ends the command.
    assert runs_the_sleeper(child)
    parent.kill()
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
