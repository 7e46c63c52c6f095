"""The batch queue's contract, and the client that sends batches and awaits their answers.

A BatchSubmission goes to the batch exchange with `reply_to` (a server-named, exclusive reply
queue) and a `correlation_id`; the batch worker answers each with one BatchResult. `sanadctl
batch submit` and the seed loader both submit through BatchClient.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from google.protobuf.message import DecodeError

from sanad.amqp import connecting
from sanad.amqp.topology import BATCH, CONTENT_TYPE, Topology
from sanad.domain.characters import CONTROL_OR_INVISIBLE, code_violations, visible
from sanad.security.batch_users import broker_user
from sanad.v1 import events_pb2

SUBMISSION_TYPE = events_pb2.BatchSubmission.DESCRIPTOR.full_name
RESULT_TYPE = events_pb2.BatchResult.DESCRIPTOR.full_name
# The longest batch_id the batch worker keeps; ours are a uuid and a chunk number, or a seed's
# licence, year and chunk.
MAX_BATCH_ID = 200
# A batch is published with its batch_id as the message id, an AMQP short string: 255 bytes.
MAX_MESSAGE_ID_BYTES = 255


def batch_id_problem(batch_id: str) -> str | None:
    """Why the batch worker refuses a batch whole for its batch_id, or None: the worker keeps
    and answers it, so it is bounded and holds no control or invisible character (it is kept
    beside its submitter's name with a \x1f between them: one holding \x1f could pass for
    another submitter's)."""
    if not batch_id:
        return "batch_id is required"
    if len(batch_id) > MAX_BATCH_ID:
        return f"batch_id must be at most {MAX_BATCH_ID} characters"
    if code_violations({"batch_id": batch_id}):
        return f"batch_id {CONTROL_OR_INVISIBLE}"
    if not visible(batch_id):
        return "batch_id must show something: it is blank"
    return None


def message_id_problem(batch_id: str) -> str | None:
    """Why a batch_id cannot be published as the message id (BatchClient.publish), or None:
    at most 255 bytes of UTF-8 (an Arabic letter takes 2)."""
    if len(batch_id.encode()) > MAX_MESSAGE_ID_BYTES:
        return f"batch_id must be at most {MAX_MESSAGE_ID_BYTES} bytes in UTF-8 (its message id)"
    return None


def rejection(item: events_pb2.BatchItemRejected) -> str:
    """Why the batch worker rejected an item, for people: "field: description" of each
    violation, joined by "; "."""
    return "; ".join(f"{v.field}: {v.description}" for v in item.violations)


class BatchClient:
    """Publishes BatchSubmissions, confirmed and mandatory, and matches each answer to its batch.

    Every message carries the connection's user as `user_id`, which the broker validates and
    the batch worker checks against the batch's centre.
    """

    def __init__(self, exchange: AbstractExchange, reply_to: str, user: str) -> None:
        self.exchange = exchange
        self.reply_to = reply_to
        self.user = user
        self.waiting: dict[str, asyncio.Future[events_pb2.BatchResult]] = {}

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        prefix: str,
        *,
        declare: bool = False,
        timeout_s: float = connecting.CONNECT_TIMEOUT_S,
    ) -> AsyncIterator["BatchClient"]:
        """A client on a connection of its own; with declare, the topology is declared first.

        Raises ChannelNotFoundEntity when the batch exchange does not exist under prefix, and
        TimeoutError when the broker has not answered within timeout_s.

        The connection is plain, not robust: its reply queue is server-named (amq.gen-*),
        which is what a batch submitter's broker permissions allow, and would not survive a
        reconnect anyway; sending the same batch ids again returns the stored answers.
        """
        connection = await connecting.connect(url, timeout_s, name=f"sanad batch client {prefix}")
        async with connection:
            # A batch no queue takes is returned: raise, rather than wait for an answer.
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            topology = Topology(prefix)
            if declare:
                await topology.declare(channel)
            exchange = await channel.get_exchange(topology.batch_exchange)
            replies = await channel.declare_queue("", exclusive=True, auto_delete=True)
            client = cls(exchange, replies.name, broker_user(url))
            await replies.consume(client._answered, no_ack=True)
            # The reply queue is exclusive: once the connection is lost no answer can come, so
            # stop waiting at once (send() reports it as the broker's failure) instead of
            # waiting out the whole --wait and blaming the workers.
            connection.close_callbacks.add(client._lost)
            yield client

    async def publish(
        self, batch: events_pb2.BatchSubmission, *, timeout_s: float | None = None
    ) -> asyncio.Future[events_pb2.BatchResult]:
        """Publish one batch; return, once the broker confirmed it, the future of its answer.

        Raises aio_pika's DeliveryError when no queue is bound to take it, and TimeoutError
        when the broker has not confirmed it within timeout_s (None: no bound). Under a memory
        or disk alarm the broker keeps the connection and its heartbeats but confirms nothing.
        """
        correlation = uuid.uuid4().hex
        answer: asyncio.Future[events_pb2.BatchResult] = asyncio.get_running_loop().create_future()
        self.waiting[correlation] = answer
        # Answered, or no longer awaited (cancelled by the caller's timeout): forgotten.
        answer.add_done_callback(lambda _: self.waiting.pop(correlation, None))
        message = aio_pika.Message(
            batch.SerializeToString(),
            content_type=CONTENT_TYPE,
            type=SUBMISSION_TYPE,
            message_id=batch.batch_id,
            correlation_id=correlation,
            reply_to=self.reply_to,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=self.user,
        )
        try:
            async with asyncio.timeout(timeout_s):
                await self.exchange.publish(message, routing_key=BATCH, mandatory=True)
        except TimeoutError:
            answer.cancel()
            raise TimeoutError(
                f"RabbitMQ confirmed no publish within {round(timeout_s or 0, 2):g} s: a memory"
                " or disk alarm blocks publishers until it clears"
            ) from None
        except BaseException:
            answer.cancel()
            raise
        return answer

    def _lost(self, _connection: object, error: BaseException | None = None) -> None:
        """The connection closed: every answer still awaited is cancelled, as aiormq fails a
        pending confirm when its connection goes."""
        for answer in list(self.waiting.values()):
            answer.cancel()

    async def _answered(self, message: AbstractIncomingMessage) -> None:
        answer = self.waiting.get(message.correlation_id or "")
        if answer is None or answer.done():
            return  # the answer to a batch no longer awaited
        try:
            answer.set_result(events_pb2.BatchResult.FromString(message.body))
        except DecodeError as error:
            answer.set_exception(error)
