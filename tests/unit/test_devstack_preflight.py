"""`make run` explains in one line why it cannot start."""

from pathlib import Path

import pytest

import sanad.devstack.__main__ as devstack
from sanad.devstack.mongo_server import free_port
from sanad.devstack.preflight import amqp_problem, mongo_problem


def test_an_unreachable_broker_is_named_with_its_address_and_a_hint() -> None:
    port = free_port()
    problem = amqp_problem(f"amqp://guest:guest@127.0.0.1:{port}/")
    assert problem is not None
    assert f"127.0.0.1:{port}" in problem
    assert "SANAD_AMQP_URL" in problem
    assert "\n" not in problem


def test_a_broker_url_with_a_bad_port_is_named_without_its_password() -> None:
    problem = amqp_problem("amqp://guest:s3cret@rabbit:notaport/")
    assert problem is not None
    assert problem.startswith("SANAD_AMQP_URL has no valid port")
    assert "s3cret" not in problem


def test_a_url_that_is_not_amqp_is_refused_before_any_connection() -> None:
    problem = amqp_problem("http://guest:s3cret@127.0.0.1:5672/")

    assert problem == "SANAD_AMQP_URL is not an amqp:// or amqps:// URL: fix SANAD_AMQP_URL"


def test_an_external_mongodb_that_does_not_answer_is_named_with_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The processes started and waited for it for ever, while make run said it was running.
    port = free_port()
    monkeypatch.setenv("SANAD_MONGO_URL", f"mongodb://sanad:s3cret@127.0.0.1:{port}/")
    monkeypatch.setenv("SANAD_MONGO_TIMEOUT_MS", "300")

    problem = mongo_problem()

    assert problem == (
        f"MongoDB at 127.0.0.1:{port} does not answer within 0.3 s"
        " (ServerSelectionTimeoutError): start it, or fix SANAD_MONGO_URL (unset, `make run`"
        " starts its own)"
    )


def test_make_run_stops_before_starting_anything_when_its_external_mongodb_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SANAD_DEVSTACK_DATA", str(tmp_path))
    monkeypatch.setenv("SANAD_MONGO_URL", f"mongodb://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("SANAD_MONGO_TIMEOUT_MS", "300")
    monkeypatch.setattr(devstack.preflight, "amqp_problem", lambda url, prefix: None)
    monkeypatch.setattr(devstack.preflight, "taken_port_problem", lambda ports: None)
    started: list[object] = []
    monkeypatch.setattr(devstack, "start_child", lambda *args: started.append(args))

    with pytest.raises(SystemExit) as refused:
        devstack.main()

    assert str(refused.value.code).startswith("devstack: MongoDB at 127.0.0.1:")
    assert started == []
