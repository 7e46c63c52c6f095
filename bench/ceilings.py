"""Ceilings measured in the same run: a no-op gRPC server, raw RabbitMQ, raw MongoDB inserts."""

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import aio_pika
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from bench.loadgen import Result, fixed_rate
from sanad.devstack.mongo_server import free_port
from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.settings import ServerSettings
from sanad.v1 import intake_pb2, intake_pb2_grpc


class NoopIntake(intake_pb2_grpc.IntakeServiceServicer):
    """The intake contract answered without doing anything: the cost of gRPC and our interceptor."""

    async def SubmitTransaction(self, request, context):  # type: ignore[no-untyped-def]
        return intake_pb2.SubmitTransactionResponse(transaction_id=request.request_id)

    async def SubmitTransactions(self, requests, context):  # type: ignore[no-untyped-def]
        index = 0
        async for item in requests:
            yield intake_pb2.SubmitTransactionsResponse(
                index=index, request_id=item.transaction.request_id, transaction_id="x"
            )
            index += 1


async def start_noop_server(settings: ServerSettings | None = None, port: int = 0) -> RunningServer:
    """The no-op server with the same settings, interceptors and health as the real services."""
    servicer = NoopIntake()

    async def up() -> bool:
        return True

    return await start_server(
        settings or ServerSettings(grpc_host="127.0.0.1"),
        port,
        [
            Registration(
                "sanad.v1.IntakeService",
                lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, s),
            )
        ],
        checks={"none": up},
    )


class NoopProcess:
    """`python -m bench.noop` with the stack's environment: a process of its own, like intake.

    In the load generator's process the no-op server would share its CPU and event loop,
    which the real intake does not; here both are measured the same way.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.noop", str(self.port)],
            env={**env, "SANAD_GRPC_HOST": "127.0.0.1"},
        )

    async def wait_serving(self, within_s: float = 30.0) -> None:
        """Until its health check says SERVING."""
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the no-op ceiling server did not start")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Ctrl-C it and wait."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def grpc_stream(
    target: str,
    make_request: "RequestFactory",
    items: int,
    streams: int,
    rate: float | None = None,
) -> Result:
    """`streams` concurrent SubmitTransactions streams of `items` each; rate = items answered/s.

    With `rate`, items are sent at that many per second in all (open loop), else at once.
    """
    interval = streams / rate if rate else 0.0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        started = time.perf_counter()
        answered = await asyncio.gather(
            *(_one_stream(stub, make_request, items, s, interval) for s in range(streams))
        )
        elapsed = time.perf_counter() - started
    result = Result(elapsed, completed=sum(ok for ok, _ in answered))
    result.errors = sum(bad for _, bad in answered)
    return result


class RequestFactory:
    """Builds the n-th request of stream s (a seam so each item gets its own request id)."""

    def __call__(self, stream: int, n: int) -> intake_pb2.SubmitTransactionRequest:
        raise NotImplementedError


async def _one_stream(
    stub: intake_pb2_grpc.IntakeServiceStub,
    make_request: RequestFactory,
    items: int,
    stream: int,
    interval: float = 0.0,
) -> tuple[int, int]:
    async def requests() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        begin = time.perf_counter()
        for n in range(items):
            if interval and (delay := begin + n * interval - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            yield intake_pb2.SubmitTransactionsRequest(transaction=make_request(stream, n))

    ok = bad = 0
    async for answer in stub.SubmitTransactions(requests(), timeout=600):
        if answer.transaction_id:
            ok += 1
        else:
            bad += 1
    return ok, bad


async def amqp_publish_consume(
    url: str, queue_name: str, messages: int, window: int
) -> tuple[Result, Result]:
    """Raw aio-pika: publish-with-confirm into a quorum queue, `window` in flight; consume+ack."""
    connection = await aio_pika.connect(url)
    async with connection:
        queue, publish = await _confirmed_publishes(connection, queue_name)
        semaphore = asyncio.Semaphore(window)

        async def publish_one() -> None:
            async with semaphore:
                await publish()

        started = time.perf_counter()
        await asyncio.gather(*(publish_one() for _ in range(messages)))
        published = Result(time.perf_counter() - started, completed=messages)

        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=1000)
        consume_queue = await consume_channel.get_queue(queue_name)
        done = asyncio.Event()
        count = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count >= messages:
                done.set()

        started = time.perf_counter()
        tag = await consume_queue.consume(on_message)
        async with asyncio.timeout(600):
            await done.wait()
        consumed = Result(time.perf_counter() - started, completed=count)
        await consume_queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    return published, consumed


async def amqp_confirm_at_rate(url: str, queue_name: str, rate: float, seconds: float) -> Result:
    """Raw aio-pika publish-with-confirm into a quorum queue at a fixed rate (open loop), one
    message a publish: the broker's own confirm latency, the floor under a submission's."""
    connection = await aio_pika.connect(url)
    async with connection:
        queue, publish = await _confirmed_publishes(connection, queue_name)
        try:
            return await fixed_rate(publish, rate, seconds)
        finally:
            await queue.delete(if_unused=False, if_empty=False)


async def _confirmed_publishes(
    connection: aio_pika.abc.AbstractConnection, queue_name: str
) -> tuple[aio_pika.abc.AbstractQueue, Callable[[], Awaitable[object]]]:
    """A durable quorum queue, and a publish-with-confirm of one persistent message into it
    about the size of a TransactionSubmitted."""
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(
        queue_name, durable=True, arguments={"x-queue-type": "quorum"}
    )
    body = b"x" * 220

    def publish() -> Awaitable[object]:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        return channel.default_exchange.publish(message, routing_key=queue_name)

    return queue, publish


@contextlib.asynccontextmanager
async def raw_collection(
    url: str, database: str, index: Sequence[tuple[str, int]] | None = None
) -> AsyncIterator[AsyncCollection[dict[str, object]]]:
    """A new collection in the same database, with no index but _id's, or with `index` as well;
    dropped on the way out. SecantusDB drops a collection document by document (a minute for
    200,000 of them here, at about 120 µs of its CPU each), so the insert ceilings measure
    their CPU inside this block, not across the drop."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    collection = client[database][f"bench_raw_{time.time_ns()}"]
    try:
        if index is not None:
            await collection.create_index(index)
        yield collection
    finally:
        await collection.drop()
        await client.close()


async def insert_many(
    collection: AsyncCollection[dict[str, object]], documents: int, chunk: int
) -> Result:
    """Raw insert_many of transaction-sized documents into `collection`, `chunk` at a time."""
    doc = {
        "center_id": "C" * 26,
        "service_code": "ROP-VISA-RENEW",
        "fee_baisa": 5000,
        "status": "RECORDED",
        "beneficiary_hash": "a" * 64,
        "channel": "COUNTER",
    }
    started = time.perf_counter()
    for offset in range(0, documents, chunk):
        await collection.insert_many(
            [{**doc, "n": n} for n in range(offset, min(offset + chunk, documents))], ordered=False
        )
    return Result(time.perf_counter() - started, completed=documents)
