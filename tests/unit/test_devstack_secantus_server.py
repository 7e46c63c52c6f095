"""The development database runs SecantusDB's own entry point with the tuned collector."""

import gc
import runpy
import subprocess
import sys

import pytest

from sanad.devstack import secantus_server


def test_the_collector_is_tuned_before_secantus_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, tuple[int, int, int]]] = []
    monkeypatch.setattr(
        runpy, "run_module", lambda name, **_: ran.append((name, gc.get_threshold()))
    )
    before = gc.get_threshold()
    try:
        secantus_server.main()
    finally:
        gc.set_threshold(*before)
    assert ran == [("secantus", secantus_server.GC_THRESHOLDS)]


def test_the_launcher_passes_secantus_its_options() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "sanad.devstack.secantus_server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "SecantusDB" in shown.stdout
    assert "--storage-path" in shown.stdout
