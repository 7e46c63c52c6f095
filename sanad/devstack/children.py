"""Child processes of the devstack, their output prefixed by name."""

import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from sanad.devstack.orphans import guarded


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread


def start_child(name: str, module: str, env: dict[str, str]) -> Child:
    """Start python -m module with its output copied to ours, each line prefixed."""
    process = subprocess.Popen(
        # A devstack killed outright still drains its services: they get the SIGTERM it owed.
        guarded([sys.executable, "-m", module], signal.SIGTERM),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the devstack only; it stops children in order
    )
    pump = threading.Thread(target=_copy, args=(name, process), daemon=True)
    pump.start()
    return Child(name, process, pump)


def _copy(name: str, process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    width = 10
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        sys.stdout.write(f"{name:<{width}}| {line}\n")
        sys.stdout.flush()


def stop_children(children: list[Child], grace_s: float = 15.0) -> list[str]:
    """SIGTERM every child, wait for them to drain, kill what is left; what did not end well,
    one phrase each (empty when every child drained and exited 0)."""
    troubles = []
    ended = {id(child) for child in children if child.process.poll() is not None}
    for child in reversed(children):
        if id(child) not in ended:
            child.process.terminate()
    for child in children:
        if id(child) in ended:  # on its own, before the stop: what made the devstack stop
            troubles.append(f"{child.name} had exited with code {child.process.returncode}")
            child.pump.join(timeout=2)
            continue
        try:
            child.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
            troubles.append(f"{child.name} killed after {grace_s:g} s")
        else:
            if child.process.returncode != 0:
                troubles.append(f"{child.name} exited with code {child.process.returncode}")
        child.pump.join(timeout=2)
    return troubles
