"""The processes ask RabbitMQ for a short heartbeat (SANAD_AMQP_HEARTBEAT_S, 10 s), so a connection
that stops bringing frames without ever closing (a partition) is seen within about half a minute
instead of RabbitMQ's 60 s heartbeat's 183-213 s; a URL that names its own heartbeat keeps it."""

import pytest
from pydantic import ValidationError

from sanad.settings import CommonSettings, with_heartbeat
from workers.ingest.settings import IngestSettings


@pytest.mark.parametrize(
    ("url", "connected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@127.0.0.1:5672/?heartbeat=10"),
        (
            "amqps://u:p%40x%2Fy@host:5671/sanad?cafile=/etc/sanad/tls/ca.crt",
            "amqps://u:p%40x%2Fy@host:5671/sanad?cafile=/etc/sanad/tls/ca.crt&heartbeat=10",
        ),
        ("amqp://u:p@h/%2F", "amqp://u:p@h/%2F?heartbeat=10"),
        ("amqp://h/?heartbeat=30", "amqp://h/?heartbeat=30"),
    ],
)
def test_a_url_gets_the_heartbeat_unless_it_names_one(url: str, connected: str) -> None:
    assert with_heartbeat(url, 10) == connected


def test_the_processes_connect_with_the_heartbeat_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANAD_AMQP_URL", "amqp://worker:pw@broker:5672/sanad")
    monkeypatch.setenv("SANAD_AMQP_HEARTBEAT_S", "4")
    assert IngestSettings().broker_url == "amqp://worker:pw@broker:5672/sanad?heartbeat=4"
    assert CommonSettings().amqp_url == "amqp://worker:pw@broker:5672/sanad"  # as given


def test_a_heartbeat_of_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0 would turn heartbeats off: a partitioned connection would never be seen.
    monkeypatch.setenv("SANAD_AMQP_HEARTBEAT_S", "0")
    with pytest.raises(ValidationError, match="amqp_heartbeat_s"):
        CommonSettings()
