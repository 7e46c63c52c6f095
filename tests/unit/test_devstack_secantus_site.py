"""The development database's interpreter starts with the tuned collector and GIL hand-off."""

import subprocess
import sys

from sanad.devstack import mongo_server


def test_the_servers_interpreter_starts_with_the_tuned_collector_and_switch_interval() -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc, sys; print(gc.get_threshold(), sys.getswitchinterval())",
        ],
        env=mongo_server.server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shown.stdout.strip() == "(50000, 20, 100) 0.001"


def test_the_dev_url_turns_retryable_writes_off() -> None:
    assert "retryWrites=false" in mongo_server.url(27017)
