"""sanadctl batch submit's progress line ends before any error line, and a chunk refused whole
is named by its own id, in text as text."""

import json
import signal
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from sanad.cli.__main__ import main
from sanad.v1 import events_pb2
from tests.unit.test_cli_broker_failures import BatchExchange, fake_batch_broker, three_chunks

TOO_LARGE = "message body of 20010354 bytes is over the 16777216 this worker reads"


class RefusingExchange(BatchExchange):
    """Answers every chunk as the worker answers a body it did not read: no batch id."""

    async def publish(self, message: aio_pika.Message, **_: Any) -> None:
        self.published.append(message.message_id or "")
        assert self.client is not None
        answer = self.client.waiting[message.correlation_id or ""]
        answer.set_result(events_pb2.BatchResult(refused_reason=TOO_LARGE))


class InterruptedExchange(BatchExchange):
    """Ctrl-C while the first chunk is awaited."""

    async def publish(self, message: aio_pika.Message, **_: Any) -> None:
        signal.raise_signal(signal.SIGINT)


def _error_lines_start_lines(err: str) -> None:
    # Before, `\r[....] 0/3 rows answerederror: ...`: the error glued to the progress line.
    assert "answerederror" not in err
    assert all(line.startswith("error: ") for line in err.splitlines() if "error: " in line)


@pytest.mark.timeout(30)
def test_a_first_chunk_refused_whole_is_named_by_its_own_id_on_a_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, RefusingExchange(confirmed=3, then=None))

    code = main(three_chunks(tmp_path), environ={})

    out, err = capsys.readouterr()
    assert code == 1
    _error_lines_start_lines(err)
    assert (
        f"error: batch b7: its first chunk was refused, so the other 2 were not sent: {TOO_LARGE}"
        in err
    )
    # Before: `refused_chunks: [': message body ...']`, a Python list with no chunk id.
    assert out.splitlines()[-2:] == ["refused_chunks:", f"  b7/0  {TOO_LARGE}"]


def test_refused_chunks_in_json_name_their_chunk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, RefusingExchange(confirmed=3, then=None))

    code = main(["--json", *three_chunks(tmp_path)], environ={})

    assert code == 1
    assert json.loads(capsys.readouterr().out)["refused_chunks"] == [f"b7/0: {TOO_LARGE}"]


def test_a_batch_answered_whole_says_no_chunk_was_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, BatchExchange(confirmed=3, then=None))

    code = main(three_chunks(tmp_path), environ={})

    out, err = capsys.readouterr()
    assert code == 0
    assert err.endswith("3/3 rows answered\n")
    assert out.splitlines()[-1] == "refused_chunks: none"


@pytest.mark.timeout(30)
def test_ctrl_c_while_a_chunk_is_awaited_ends_the_progress_line_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, InterruptedExchange(confirmed=0, then=None))

    code = main(three_chunks(tmp_path), environ={})

    err = capsys.readouterr().err
    assert code == 130
    _error_lines_start_lines(err)
    assert "\nerror: interrupted; batch b7: send the file again with --batch-id b7" in err


class FirstAnsweredExchange(BatchExchange):
    """Confirms every chunk and answers only the first, as when the worker stops after it."""

    async def publish(self, message: aio_pika.Message, **_: Any) -> None:
        self.published.append(message.message_id or "")
        assert self.client is not None
        if len(self.published) == 1:
            answer = self.client.waiting[message.correlation_id or ""]
            answer.set_result(events_pb2.BatchResult(batch_id=message.message_id or ""))


@pytest.mark.timeout(30)
def test_chunks_sent_and_left_unanswered_are_counted_apart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_batch_broker(monkeypatch, FirstAnsweredExchange(confirmed=3, then=None))

    code = main([*three_chunks(tmp_path), "--wait", "0.5"], environ={})

    err = capsys.readouterr().err
    assert code == 1
    _error_lines_start_lines(err)
    assert "error: batch b7: 3 of 3 chunks sent, 1 answered within 0.5 s." in err
