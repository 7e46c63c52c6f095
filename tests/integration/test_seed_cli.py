"""`sanadctl seed` against the real broker when it refuses the login: one line, exit 1."""

from urllib.parse import urlsplit, urlunsplit

import pytest

from sanad.cli.__main__ import main
from sanad.seed import run
from tests.conftest import AMQP_URL
from tests.unit.seed_fakes import SEED, Registered

pytestmark = pytest.mark.integration


def test_seed_whose_login_the_broker_refuses_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "SeedRegistry", Registered)
    parts = urlsplit(AMQP_URL)
    host = parts.netloc.rsplit("@", 1)[-1]
    wrong = urlunsplit(parts._replace(netloc=f"{parts.username}:not-its-password@{host}"))

    code = main([*SEED, "--amqp-url", wrong], environ={})

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: seed history not loaded: RabbitMQ at {parts.hostname}:{parts.port or 5672}:"
        " the broker refused the user name or password: give the user, password and vhost it"
        " takes with --amqp-url or SANAD_AMQP_URL. Seed again once it takes batches:"
        " batches answered are answered the same, never stored twice"
    ]
