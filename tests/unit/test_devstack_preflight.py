"""`make run` explains in one line why it cannot start."""

from sanad.devstack.mongo_server import free_port
from sanad.devstack.preflight import amqp_problem


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
