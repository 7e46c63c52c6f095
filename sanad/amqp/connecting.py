"""A command's connection to RabbitMQ, bounded in time.

Without a bound, a host and port that accept TCP but never answer AMQP (another server, a
proxy whose broker is gone) are waited on forever; sanadctl and the seed loader then hang.
"""

import aio_pika
from aio_pika.abc import AbstractConnection

# As SANAD_AMQP_TIMEOUT_S's default, the processes' own bound on a broker operation.
CONNECT_TIMEOUT_S = 5.0


async def connect(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> AbstractConnection:
    """A plain connection, handshake done within timeout_s; else a TimeoutError that says so.

    Every other failure (nothing listening, a refused login) is aio_pika's own error.
    """
    try:
        return await aio_pika.connect(url, timeout=timeout_s)
    except TimeoutError:
        raise TimeoutError(
            f"no AMQP answer within {timeout_s:g} s: is that RabbitMQ's address and port?"
        ) from None
