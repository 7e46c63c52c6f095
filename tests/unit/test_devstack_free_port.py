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


def test_a_series_of_ports_is_free_at_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # The extra ingest workers listen 10 and 20 above the first one's port; one of those was
    # once the stack's own MongoDB port, and the second worker could not start (metrics hunt).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        # One series to choose from, busy - 20, busy - 10 and busy: its first port is free.
        monkeypatch.setattr(mongo_server, "LOWEST_PORT", busy - 20)
        monkeypatch.setattr(mongo_server, "_first_ephemeral_port", lambda: busy + 1)
        monkeypatch.setattr(mongo_server, "_handed_out", set())
        with pytest.raises(MongoServerError, match="no free port"):
            free_port(3, 10)


def test_every_port_of_a_series_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongo_server, "_handed_out", set())
    first = free_port(9, 10)
    series = set(range(first, first + 90, 10))
    assert series == mongo_server._handed_out
    assert free_port() not in series
