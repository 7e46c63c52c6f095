"""Who published a message on a work queue, as far as the broker vouches for it.

RabbitMQ refuses a message whose `user_id` is not the publishing connection's user, so a set
`user_id` names its publisher. A copy reaches a work queue through the default exchange: a
parked retry the broker dead-letters back (outcomes.back_from_retry) or a dead letter an
operator replays (dead_letter_pass). Its publisher is a worker or an operator, the only users
the deployments let write to the default exchange, and the original publisher travels in
USER_ID_HEADER, written from the original's validated `user_id` when the copy was made.
"""

from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.outcomes import USER_ID_HEADER


def original_publisher(message: AbstractIncomingMessage) -> str:
    """The broker user that published the message first; '' when it named none."""
    if message.exchange == "":
        value = (message.headers or {}).get(USER_ID_HEADER)
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8", "replace")
        return value if isinstance(value, str) else ""
    return message.user_id or ""
