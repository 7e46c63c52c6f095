"""Ports for the development stack's listeners come from below the ephemeral range."""

import socket

import pytest

from sanad.devstack import mongo_server
from sanad.devstack.mongo_server import LOWEST_PORT, MongoServerError, free_port


def test_ports_lie_below_the_range_outgoing_connections_take_their_source_ports_from() -> None:
    first_ephemeral = int(mongo_server.EPHEMERAL_RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert all(LOWEST_PORT <= port < first_ephemeral for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_port_someone_listens_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        # Two ports to choose from: one busy, the other handed out already.
        monkeypatch.setattr(mongo_server, "LOWEST_PORT", busy)
        monkeypatch.setattr(mongo_server, "_first_ephemeral_port", lambda: busy + 2)
        monkeypatch.setattr(mongo_server, "_handed_out", {busy + 1})
        with pytest.raises(MongoServerError, match="no free port"):
            free_port()


def test_the_range_defaults_to_the_kernels_usual_start_when_it_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongo_server, "EPHEMERAL_RANGE", mongo_server.Path("/nonexistent/range"))
    assert mongo_server._first_ephemeral_port() == 32_768
