"""Stopping the devstack's children says which did not drain: `make run` ends with one line."""

import subprocess
import sys
import threading

from sanad.devstack.children import Child, stop_children

ON_SIGTERM = {
    "drains": "lambda *_: sys.exit(0)",
    "fails": "lambda *_: sys.exit(3)",
    "hangs": "signal.SIG_IGN",
}


def child(name: str, behaviour: str) -> Child:
    """A child that handles SIGTERM as told, started once its handler is in place."""
    code = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, {ON_SIGTERM[behaviour]})\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    pump = threading.Thread(target=process.communicate, daemon=True)
    pump.start()
    return Child(name, process, pump)


def test_children_that_drain_leave_nothing_to_say() -> None:
    assert stop_children([child("registry", "drains"), child("intake", "drains")]) == []


def test_a_child_that_fails_or_hangs_is_named() -> None:
    children = [child("registry", "drains"), child("intake", "fails"), child("ingest-1", "hangs")]
    troubles = stop_children(children, grace_s=2)
    assert troubles == ["intake exited with code 3", "ingest-1 killed after 2 s"]
    assert all(c.process.poll() is not None for c in children)


def test_a_child_that_ended_on_its_own_before_the_stop_is_named() -> None:
    gone = child("metrics", "drains")
    gone.process.terminate()
    gone.process.wait()
    troubles = stop_children([child("registry", "drains"), gone])
    assert troubles == ["metrics had exited with code 0"]
