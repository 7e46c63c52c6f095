"""Checks before starting the stack, each answering with a one-line problem or None."""

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit


def amqp_problem(amqp_url: str) -> str | None:
    """Why RabbitMQ at amqp_url cannot be reached, or None when it listens."""
    parts = urlsplit(amqp_url)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError as error:
        return f"SANAD_AMQP_URL has no valid port ({error})"
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as error:
        return (
            f"RabbitMQ is not reachable at {host}:{port} ({error.strerror or error}). "
            "Start it (e.g. `rabbitmq-server -detached`) or set SANAD_AMQP_URL."
        )


def taken_port_problem(ports: Iterable[tuple[str, str, int]]) -> str | None:
    """The first (child, variable, port) that another program listens on, named with the
    variable that moves it; None when every port is free.

    Probed as the children bind (every address, SO_REUSEADDR): a closing connection on a port
    does not count, a listener on any address does.
    """
    for child, variable, port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))  # every address, as the children bind
            except OverflowError:  # an extra ingest worker's, 10 per worker above the first's
                return f"port {port} ({child}, {variable}) is above 65535: lower {variable}"
            except OSError as error:
                return (
                    f"port {port} ({child}, {variable}) is taken ({error.strerror or error}):"
                    f" another program listens there; stop it, or move it with {variable}"
                )
    return None
