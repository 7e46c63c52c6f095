"""`make run` refuses what it cannot run as asked, in one line, and stops when its database dies."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from sanad.devstack import __main__ as devstack
from sanad.devstack import certs, mongo_server, secure


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


def test_sanadctl_env_points_at_the_stacks_broker_and_only_its_owner_reads_it(
    tmp_path: Path,
) -> None:
    """`sanadctl batch submit` in another terminal reaches the broker and prefix `make run`
    uses; the broker URL may carry a password, so the file is the owner's alone."""
    plan = devstack.Plan(data_dir=tmp_path, mongo_port=1, workers=1, external_mongo=True)
    env = {
        "SANAD_DEVSTACK_PLAINTEXT": "1",
        "SANAD_AMQP_URL": "amqp://sanad:it's-secret@mq.example:5673/sanad",
        "SANAD_AMQP_PREFIX": "review",
    }
    written = tmp_path / "sanadctl.env"
    written.write_text("# an older run's, readable by everyone\n")
    written.chmod(0o644)
    devstack._protect(plan, env, {})
    script = f'. "{written}"; printf "%s\\n" "$SANAD_AMQP_URL" "$SANAD_AMQP_PREFIX"'
    sourced = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": os.environ["PATH"], "SANAD_AMQP_PREFIX": "sanad"},
        capture_output=True,
        text=True,
        check=True,
    )

    assert sourced.stdout.splitlines() == [env["SANAD_AMQP_URL"], "review"]
    assert written.stat().st_mode & 0o777 == 0o600


def test_sanadctl_env_names_the_default_broker_when_none_was_set(tmp_path: Path) -> None:
    plan = devstack.Plan(data_dir=tmp_path, mongo_port=1, workers=1, external_mongo=True)
    devstack._protect(plan, {"SANAD_DEVSTACK_PLAINTEXT": "1"}, {})
    written = (tmp_path / "sanadctl.env").read_text()
    assert f"export SANAD_AMQP_URL='{devstack.DEFAULT_AMQP_URL}'" in written
    assert "export SANAD_AMQP_PREFIX='sanad'" in written


def test_a_kept_pki_without_a_file_the_stack_needs_is_named_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not intake's FileNotFoundError traceback once the database and the others run."""
    folder = tmp_path / "certs"
    certs.make_dev_pki(folder)
    (folder / "intake.key").unlink()
    monkeypatch.setenv("SANAD_DEVSTACK_CERTS", str(folder))
    monkeypatch.setenv("SANAD_DEVSTACK_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("SANAD_DEVSTACK_PLAINTEXT", raising=False)
    monkeypatch.setattr(devstack.preflight, "amqp_problem", lambda url, prefix: None)
    monkeypatch.setattr(devstack.preflight, "taken_port_problem", lambda ports: None)
    monkeypatch.setattr(devstack.mongo_server, "start", started)
    monkeypatch.setattr(devstack, "start_child", started)
    with pytest.raises(SystemExit) as refused:
        devstack.main()

    assert str(refused.value.code) == (
        f"devstack: the dev PKI in {folder}/ lacks intake.key: replace it with"
        f" `python -m sanad.devstack.certs --out {folder} --force` (certificates and tokens"
        f" issued from the old one stop working), or remove {folder}/ and start again"
    )
    with pytest.raises(secure.IncompletePki):
        secure.ensure_pki(folder)


def started(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("started a process although the stack cannot run")


def test_a_database_that_cannot_start_says_why_from_its_log(tmp_path: Path) -> None:
    """A data folder another server holds (a second `make run` on the same .data) is named
    with the database's own words and its log, not only an exit code."""
    holder = mongo_server.start(mongo_server.free_port(), tmp_path / "mongo")
    log = tmp_path / "mongo.log"
    log.write_text("an earlier run's last words\n")
    try:
        with pytest.raises(mongo_server.MongoServerError) as refused:
            mongo_server.start(mongo_server.free_port(), tmp_path / "mongo", log)
    finally:
        holder.kill()
        holder.wait()

    said = str(refused.value)
    assert said.startswith("SecantusDB exited with code 1: ")
    assert "already being managed by another process" in said
    assert said.endswith(f" (more in {log})")
    assert "earlier run" not in said
    assert "\n" not in said
