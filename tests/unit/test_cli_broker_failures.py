"""sanadctl's broker commands (batch submit, dead-letters, seed) against a broker they cannot
use: one `error:` line and exit 1, within a bounded time, never a traceback or a hang."""

import asyncio
import gc
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from sanad.amqp import connecting
from sanad.amqp.batches import BatchClient
from sanad.cli import batch as batch_command
from sanad.cli import batch_send, dead_letters
from sanad.cli.__main__ import main
from sanad.domain.clock import utcnow
from sanad.seed import run
from sanad.seed.batches import BatchLoader
from sanad.v1 import events_pb2
from tests.unit.dead_letter_fakes import FakeBroker, install
from tests.unit.seed_fakes import SEED, Loaded, Registered

NOTHING_LISTENS = "amqp://guest:secret-word@127.0.0.1:1/"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An AMQP URL whose port takes TCP connections (the kernel accepts them on the listen
    backlog) but never says a word of AMQP."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"amqp://guest:secret-word@127.0.0.1:{listener.getsockname()[1]}/"


@pytest.mark.timeout(30)
def test_batch_submit_to_a_port_that_never_speaks_amqp_fails_within_its_wait(
    silent_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("request_id,service_code,fee_baisa,civil_number\nr-1,S,5000,90817263\n")
    submit = ["batch", "submit", str(path), "--center", "C1", "--amqp-url", silent_url]

    code = main([*submit, "--wait", "1"], environ={})

    err = capsys.readouterr().err.splitlines()
    assert code == 1
    port = silent_url.rsplit(":", 1)[1].rstrip("/")
    assert len(err) == 1
    assert f"not sent: RabbitMQ at 127.0.0.1:{port}: no AMQP answer within 1 s" in err[0]
    assert "secret-word" not in err[0]


@pytest.mark.timeout(30)
def test_dead_letters_from_a_port_that_never_speaks_amqp_fail_within_five_seconds(
    silent_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dead-letters", "list", "--amqp-url", silent_url], environ={})

    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: dead letters of ingest not reached: no AMQP answer within 5 s:"
        " is that RabbitMQ's address and port? (--amqp-url or SANAD_AMQP_URL)"
    ]


@pytest.mark.timeout(30)
def test_a_replay_under_a_broker_alarm_stops_at_its_deadline_saying_what_it_replayed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Under a memory or disk alarm the broker keeps the connection (and its heartbeats) and
    # takes publishes, but confirms none until the alarm clears.
    broker = FakeBroker(queues={"sanad.ingest": [], "sanad.ingest.dead": []}, alarm_after=1)
    broker.letters("sanad.ingest.dead", ("unknown-type", "m-0"), ("unknown-type", "m-1"))
    install(monkeypatch, broker)
    monkeypatch.setattr(dead_letters, "STEP_TIMEOUT_S", 0.2)

    code = main(["dead-letters", "replay"], environ={})

    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: the pass over the dead letters of ingest stopped after 1 letter (1 replayed,"
        " 0 kept, 0 dropped): RabbitMQ confirmed no publish within 0.2 s: a memory or disk"
        " alarm blocks publishers until it clears; the letter it failed on (m-1, unknown-type)"
        " is kept, in the queue"
    ]
    assert broker.ids("sanad.ingest") == ["m-0"]
    assert broker.ids("sanad.ingest.dead") == ["m-1"]


@pytest.mark.timeout(30)
def test_a_list_under_a_broker_alarm_stops_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = FakeBroker(queues={"sanad.ingest": [], "sanad.ingest.dead": []}, alarm_after=0)
    broker.letters("sanad.ingest.dead", ("invalid", "m-0"))
    install(monkeypatch, broker)
    monkeypatch.setattr(dead_letters, "STEP_TIMEOUT_S", 0.2)

    code = main(["dead-letters", "list"], environ={})

    assert code == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "stopped after 0 letters" in line
    assert "RabbitMQ confirmed no publish within 0.2 s" in line
    assert broker.ids("sanad.ingest.dead") == ["m-0"]


@pytest.mark.timeout(30)
async def test_the_seed_loader_gives_up_on_a_port_that_never_speaks_amqp(silent_url: str) -> None:
    loader = BatchLoader(silent_url, "p", connect_timeout_s=0.5)

    with pytest.raises(TimeoutError, match=r"no AMQP answer within 0\.5 s"):
        await loader.load([events_pb2.BatchSubmission(batch_id="b", center_id="C1")])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["batch", "dead-letters"])
def test_a_broker_nothing_answers_for_says_to_start_it_or_move_the_url(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Connect call failed ('127.0.0.1', 1)" alone said neither.
    path = tmp_path / "rows.csv"
    path.write_text("request_id,service_code,fee_baisa,civil_number\nr-1,S,5000,90817263\n")
    argv = {
        "batch": ["batch", "submit", str(path), "--center", "C1"],
        "dead-letters": ["dead-letters", "list"],
    }[command]

    code = main([*argv, "--amqp-url", NOTHING_LISTENS], environ={})

    (line,) = capsys.readouterr().err.splitlines()
    assert code == 1
    assert line.endswith(
        "Connect call failed ('127.0.0.1', 1): start RabbitMQ, or give its address with"
        " --amqp-url or SANAD_AMQP_URL"
    )
    assert "secret-word" not in line


@pytest.mark.timeout(30)
def test_seed_with_an_unreachable_broker_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "SeedRegistry", Registered)

    code = main([*SEED, "--amqp-url", NOTHING_LISTENS], environ={})

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: seed history not loaded: RabbitMQ at 127.0.0.1:1: Connect ")
    assert "secret-word" not in line


# 1999 and the current year: the batch worker refused every item of them, each sent 20 times.
@pytest.mark.parametrize("years", ["2023,abc", "2024,", "0", "10000", "1999", str(utcnow().year)])
def test_years_that_are_not_years_are_a_usage_error(
    years: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["seed", "--years", years], environ={})

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --years:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--scale", "nan"),
        ("--scale", "-1"),
        ("--scale", "0"),
        ("--batch-size", "0"),
        ("--batch-size", "5001"),
        ("--seed", "99999999999999999999"),
    ],
)
def test_seed_numbers_it_cannot_use_are_a_usage_error(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["seed", flag, value], environ={})

    assert exit_info.value.code == 2
    assert f"error: argument {flag}:" in capsys.readouterr().err


def test_seed_with_json_prints_its_figures_as_one_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "SeedRegistry", Registered)
    monkeypatch.setattr(run, "BatchLoader", Loaded)

    code = main(["--json", *SEED], environ={})

    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()
    figures = json.loads(line)
    assert figures["completed_2024"] == 75
    assert (figures["batches"], figures["items_accepted"], figures["batches_retried"]) == (
        3,
        1_234,
        1,
    )
    assert figures["centres"] > 0
    assert figures["items_rejected"] == 0
    assert isinstance(figures["seconds"], float)


class BatchExchange:
    """The batch exchange of a broker that confirms and answers the first `confirmed`
    publishes, then fails the next one with `then`, or (None) never confirms it, as under a
    memory or disk alarm."""

    def __init__(self, confirmed: int, then: BaseException | None) -> None:
        self.confirmed = confirmed
        self.then = then
        self.client: BatchClient | None = None
        self.published: list[str] = []

    async def publish(self, message: aio_pika.Message, **_: Any) -> None:
        if len(self.published) >= self.confirmed:
            if self.then is not None:
                raise self.then
            await asyncio.Event().wait()
        self.published.append(message.message_id or "")
        assert self.client is not None
        answer = self.client.waiting[message.correlation_id or ""]
        answer.set_result(events_pb2.BatchResult(batch_id=message.message_id or ""))


def fake_batch_broker(monkeypatch: pytest.MonkeyPatch, exchange: BatchExchange) -> None:
    @asynccontextmanager
    async def connect(*_: Any, **__: Any) -> AsyncIterator[BatchClient]:
        client = BatchClient(exchange, "amq.gen-replies", "guest")  # type: ignore[arg-type]
        exchange.client = client
        yield client

    monkeypatch.setattr(batch_send.BatchClient, "connect", connect)


def three_chunks(tmp_path: Path) -> list[str]:
    path = tmp_path / "rows.csv"
    path.write_text(
        "request_id,service_code,fee_baisa,civil_number\n"
        + "".join(f"r-{n},S,5000,9081726{n}\n" for n in range(3))
    )
    return ["batch", "submit", str(path), "--center", "C1", "--chunk", "1", "--batch-id", "b7"]


@pytest.mark.timeout(30)
def test_a_broker_cut_after_a_chunk_was_confirmed_names_the_batch_id_to_send_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED - cut")
    fake_batch_broker(monkeypatch, BatchExchange(confirmed=2, then=cut))

    code = main(three_chunks(tmp_path), environ={})

    assert code == 1
    line = capsys.readouterr().err.splitlines()[-1]
    assert "batch b7: RabbitMQ at 127.0.0.1:5672 failed after confirming 2 of 3 chunks" in line
    assert "CONNECTION_FORCED - cut" in line
    assert "send the file again with --batch-id b7 --chunk 1" in line
    assert "not sent" not in line


@pytest.mark.timeout(30)
def test_a_broker_that_stops_confirming_is_given_up_on_at_the_wait_with_the_batch_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, BatchExchange(confirmed=1, then=None))

    code = main([*three_chunks(tmp_path), "--wait", "0.5"], environ={})

    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    line = err.splitlines()[-1]
    assert "failed after confirming 1 of 3 chunks: RabbitMQ confirmed no publish within 0." in line
    assert "send the file again with --batch-id b7 --chunk 1" in line


def test_a_broker_that_refuses_the_user_on_the_vhost_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What aiormq raises when the broker answers Connection.Open with Connection.Close (no
    # permission on the vhost, or no such vhost), seen against RabbitMQ.
    closed = aiormq.exceptions.InvalidFrameError(
        "Expected one of ['Connection.OpenOk'], got <Connection.Close object at 0x7f83f90cffb0>"
    )

    async def refused(*_: Any, **__: Any) -> None:
        raise closed

    monkeypatch.setattr(batch_command, "send", refused)
    url = "amqp://batch-c1:secret-word@127.0.0.1:5672/no%2Dsuch"

    code = main([*three_chunks(tmp_path), "--amqp-url", url], environ={})

    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: batch b7 not sent: RabbitMQ at 127.0.0.1:5672: the broker refused user"
        " 'batch-c1' on vhost 'no-such': the user has no permission there, or no such vhost:"
        " give the user, password and vhost it takes with --amqp-url or SANAD_AMQP_URL"
    ]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("listens", [False, True])
async def test_a_connection_that_failed_is_closed_at_once(listens: bool) -> None:
    # aio_pika.connect leaves a connection that failed to its __del__, which after a
    # command's event loop has stopped only makes a close() that is never awaited.
    with socket.socket() as held:  # a port of our own: refused, or silent when it listens
        held.bind(("127.0.0.1", 0))
        if listens:
            held.listen()
        port = held.getsockname()[1]
        with pytest.raises((OSError, TimeoutError)):
            await connecting.connect(f"amqp://guest:guest@127.0.0.1:{port}/", 0.5)

        ours = [
            found
            for found in gc.get_objects()
            if isinstance(found, aio_pika.Connection) and found.url.port == port
        ]
    assert ours
    assert all(connection.is_closed for connection in ours)
