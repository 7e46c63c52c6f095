"""A command's connection to RabbitMQ, bounded in time.

Without a bound, a host and port that accept TCP but never answer AMQP (another server, a
proxy whose broker is gone) are waited on forever; sanadctl and the seed loader then hang.
"""

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.connection import make_url
from aiormq.abc import FieldTable

# As SANAD_AMQP_TIMEOUT_S's default, the processes' own bound on a broker operation.
CONNECT_TIMEOUT_S = 5.0


async def connect(
    url: str, timeout_s: float = CONNECT_TIMEOUT_S, name: str | None = None
) -> AbstractConnection:
    """A plain connection, handshake done within timeout_s; else a TimeoutError that says so.

    Every other failure (nothing listening, a refused login) is aio_pika's own error. A
    connection that failed is closed here: aio_pika.connect leaves it to its `__del__`, which
    after the command's event loop has stopped only makes a close() it never awaits.
    """
    # The broker shows `name` (client property connection_name), so operators can find it.
    properties: FieldTable | None = None if name is None else {"connection_name": name}
    connection = aio_pika.Connection(make_url(url), client_properties=properties)
    try:
        await connection.connect(timeout=timeout_s)
    except BaseException as error:
        await connection.close()
        if isinstance(error, TimeoutError):
            raise TimeoutError(
                f"no AMQP answer within {timeout_s:g} s: is that RabbitMQ's address and port?"
            ) from None
        raise
    return connection
