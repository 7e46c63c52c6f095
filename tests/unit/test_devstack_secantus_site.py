"""The development database's interpreter starts with the tuned garbage collector."""

import subprocess
import sys

from sanad.devstack import mongo_server


def test_the_servers_interpreter_starts_with_the_tuned_collector() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold())"],
        env=mongo_server.server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert shown.stdout.strip() == "(50000, 20, 100)"


def test_the_dev_url_turns_retryable_writes_off() -> None:
    assert "retryWrites=false" in mongo_server.url(27017)
