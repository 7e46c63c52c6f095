"""Checks before starting the stack, each answering with a one-line problem or None."""

import socket
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
