"""The workers' shared consume loop: broker trouble is retried with backoff until stopped."""

import asyncio
from types import SimpleNamespace

import pytest
from aio_pika.exceptions import (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ProbableAuthenticationError,
)

from sanad.amqp.consumer import ConsumerCancelled
from sanad.rpc.server import start_server
from sanad.settings import ServerSettings
from workers import lifecycle
from workers.ingest.app import IngestApp


class FlakyConsumer:
    """Fails `failures` times with `error`, then consumes until stopped."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("broker unreachable")
        self.attempts = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        await stop.wait()


async def run_past_failures(
    consumer: FlakyConsumer,
    monkeypatch: pytest.MonkeyPatch,
    gate: lifecycle.Gate | None = None,
) -> list[float]:
    """consume_until_stopped (with gate) until the consumer runs, then stop it; the pauses it
    took."""
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(lifecycle.asyncio, "sleep", recorded_sleep)
    stopping = asyncio.Event()
    loop = asyncio.create_task(lifecycle.consume_until_stopped(consumer, stopping, gate))
    for _ in range(1000):
        if consumer.attempts > consumer.failures:
            break
        await real_sleep(0)
    stopping.set()
    await asyncio.wait_for(loop, 1)
    return pauses


async def test_a_consumer_that_cannot_reach_the_broker_is_retried_until_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = FlakyConsumer(failures=8)

    pauses = await run_past_failures(consumer, monkeypatch)

    assert consumer.attempts == 9
    assert pauses == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


async def test_a_cancelled_consumer_ends_the_loop_instead_of_idling() -> None:
    class Cancelled:
        async def run(self, stop: asyncio.Event) -> None:
            raise ConsumerCancelled("queue deleted")

    with pytest.raises(ConsumerCancelled):
        await asyncio.wait_for(lifecycle.consume_until_stopped(Cancelled(), asyncio.Event()), 1)


@pytest.mark.parametrize(
    "error",
    [
        ChannelInvalidStateError("the channel closed under an ack"),
        AMQPConnectionError("connection reset mid-batch"),
        ConnectionResetError("reset by peer"),
    ],
)
async def test_a_connection_lost_mid_batch_reconnects_instead_of_ending_the_worker(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = FlakyConsumer(failures=2, error=error)

    await run_past_failures(consumer, monkeypatch)

    assert consumer.attempts == 3


async def test_a_stopping_worker_reports_not_serving_while_it_drains() -> None:
    running = await start_server(ServerSettings(grpc_host="127.0.0.1"), 0, [], checks={})
    await running.health.check_once()
    unused = SimpleNamespace(ensure_indexes=None)  # never reached: stop() touches no store
    app = IngestApp(None, None, unused, None, health=running)  # type: ignore[arg-type]
    assert running.health.serving

    await app.stop()

    assert app.stopping.is_set()
    assert not running.health.serving  # before the current batch is acked and the port closes
    await running.stop(0)


async def test_an_unexpected_consumer_error_is_retried_with_backoff_instead_of_exiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = FlakyConsumer(failures=2, error=RuntimeError("a bug in the consume path"))

    pauses = await run_past_failures(consumer, monkeypatch)

    assert consumer.attempts == 3
    assert pauses == [0.2, 0.4]


async def test_a_consumer_that_ran_long_before_failing_is_retried_at_the_shortest_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(lifecycle, "monotonic", lambda: clock[0])

    class LongRunsBetweenBlips(FlakyConsumer):
        async def run(self, stop: asyncio.Event) -> None:
            if self.attempts in (4, 5):  # the fifth and sixth runs consume for a minute
                clock[0] += 60.0
            await super().run(stop)

    consumer = LongRunsBetweenBlips(failures=6)

    pauses = await run_past_failures(consumer, monkeypatch)

    assert pauses == [0.2, 0.4, 0.8, 1.6, 0.2, 0.2]


async def test_a_worker_waits_for_its_database_before_consuming_and_says_why_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[object] = [ConnectionError("mongodb://u:secret@db"), ConnectionError("x"), False]
    answers.append(True)

    async def ready() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    pauses: list[float] = []

    async def no_pause(stop: asyncio.Event, seconds: float) -> bool:
        pauses.append(seconds)
        return stop.is_set()

    monkeypatch.setattr(lifecycle, "pause", no_pause)
    caplog.set_level("INFO", logger="sanad.worker")

    assert await lifecycle.wait_until_ready(lifecycle.Gate(ready, "MongoDB", 1.0), asyncio.Event())
    assert pauses == [0.2, 0.4, 0.8]
    assert [r.getMessage() for r in caplog.records if r.name == "sanad.worker"] == [
        "not consuming until MongoDB answers (ConnectionError)",
        "not consuming until MongoDB answers (not ready)",
        "MongoDB answers; consuming",
    ]
    assert "secret" not in caplog.text


async def test_a_worker_stopped_while_waiting_for_its_database_never_consumes() -> None:
    stopping = asyncio.Event()

    async def never() -> bool:
        stopping.set()  # SIGTERM arrives while MongoDB is away
        return False

    assert not await lifecycle.wait_until_ready(lifecycle.Gate(never, "MongoDB", 1.0), stopping)


async def test_a_gated_consumer_waits_for_the_gate_again_before_reconnecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker blip while MongoDB is away: reconnecting at once would take the prefetch again,
    # one more count toward each message's delivery limit.
    consumer = FlakyConsumer(failures=1)
    asked: list[int] = []

    async def ready() -> bool:
        asked.append(consumer.attempts)
        return True

    await run_past_failures(consumer, monkeypatch, lifecycle.Gate(ready, "MongoDB", 1.0))

    assert asked == [0, 1]  # before the first run, and again before the run after the failure


def test_a_gate_of_two_things_says_they_answer() -> None:
    async def ready() -> bool:
        return True

    assert lifecycle.Gate(ready, "MongoDB", 1.0).answers == "MongoDB answers"
    assert lifecycle.Gate(ready, "MongoDB and the registry", 1.0).answers == (
        "MongoDB and the registry answer"
    )


class AnsweringClient:
    """MongoDB's ping answered at once."""

    class Admin:
        async def command(self, name: str) -> dict[str, int]:
            return {"ok": 1}

    admin = Admin()


class SlowScanStore:
    """Indexes built at once; the rollups' scan takes as long as `scan_s`."""

    def __init__(self, scan_s: float) -> None:
        self.scan_s = scan_s
        self.scans = 0
        self.scanning = asyncio.Event()

    async def ensure_indexes(self) -> None:
        return None

    async def recent_places(self, since_day: str) -> set[tuple[str, str, str]]:
        self.scans += 1
        self.scanning.set()
        await asyncio.sleep(self.scan_s)
        return {("G", "G-W", "A")}


async def test_the_ingest_worker_is_ready_with_its_indexes_not_after_its_rollup_scan() -> None:
    # Before, the 90-day scan was part of readiness: a scan longer than a health check's 2 s
    # was cancelled and started again at every check, NOT_SERVING and never consuming.
    store = SlowScanStore(scan_s=3600.0)
    app = IngestApp(None, AnsweringClient(), store, None)  # type: ignore[arg-type]
    following = asyncio.create_task(app.follow_places())

    async with asyncio.timeout(2):
        assert await app.indexes.ready()
        await store.scanning.wait()  # the scan starts beside, once the indexes are built
    assert await app.indexes.ready()
    assert store.scans == 1  # not started again by each readiness check
    app.stopping.set()
    following.cancel()  # as run() does when consuming ends
    with pytest.raises(asyncio.CancelledError):
        await following


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"),
            "ProbableAuthenticationError: ACCESS_REFUSED - Login was refused",
        ),
        (
            AMQPConnectionError(111, "Connect call failed ('127.0.0.1', 5673)"),
            "AMQPConnectionError: Connect call failed ('127.0.0.1', 5673)",
        ),
        (TimeoutError(), "TimeoutError"),
    ],
)
async def test_a_consumer_the_broker_refuses_logs_the_brokers_words_not_a_tuple_repr(
    error: Exception, shown: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # It logged "cannot consume (<ProbableAuthenticationError: ('ACCESS_REFUSED - ...',)>)".
    caplog.set_level("WARNING", logger="sanad.worker")

    await run_past_failures(FlakyConsumer(failures=1, error=error), monkeypatch)

    assert [r.getMessage() for r in caplog.records if r.name == "sanad.worker"] == [
        f"cannot consume ({shown}); retrying in 0.2s"
    ]
