"""sanadctl batch submit: files Excel writes, channels the message cannot carry, and Ctrl-C."""

from pathlib import Path
from typing import Any

import pytest

from sanad.cli import batch as batch_command
from sanad.cli.__main__ import main
from sanad.cli.batch_file import BadFile, chunks_of, read_numbered
from sanad.v1 import common_pb2, events_pb2

HEADER = "request_id,service_code,channel,fee_baisa,civil_number\n"


def test_a_csv_with_a_byte_order_mark_reads_its_first_column_by_name(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + "r-1,ROP-VISA,counter,5000,90817263\n").encode())
    ndjson = tmp_path / "rows.ndjson"
    ndjson.write_bytes('\ufeff{"request_id": "r-2", "fee_baisa": 1}\n'.encode())

    (row,) = read_numbered(path)[0]

    assert row["request_id"] == "r-1"
    assert chunks_of([row], "b", "C1", 10)[0].items[0].request_id == "r-1"
    assert read_numbered(ndjson)[0] == [{"request_id": "r-2", "fee_baisa": "1"}]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("rows.csv", HEADER + "r-1,S,counter,5000,1\nr-2,S,fax,5000,1\n", 3),
        ("rows.csv", HEADER + "r-1,S,unspecified,5000,1\n", 2),
        ("rows.ndjson", '{"fee_baisa": 1}\n\n{"channel": "CHANNEL_API"}\n', 3),
    ],
)
def test_a_channel_the_message_cannot_carry_is_a_bad_row_named_by_line_and_field(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(BadFile, match=rf"line {line}: channel '[^']+' is not one of counter"):
        read_numbered(path)[0]


def test_known_channels_in_any_case_and_an_empty_one_are_sent_as_such(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "a,S, Mobile ,1,1\nb,S,API,1,1\nc,S,,1,1\n")

    items = chunks_of(read_numbered(path)[0], "b", "C1", 10)[0].items

    assert [item.channel for item in items] == [
        common_pb2.CHANNEL_MOBILE,
        common_pb2.CHANNEL_API,
        common_pb2.CHANNEL_BATCH,
    ]


def test_a_bad_channel_exits_2_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "r-1,S,fax,5000,90817263\n")
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 2
    assert f"{path}, line 2: channel 'fax'" in capsys.readouterr().err


async def _never_called(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("nothing may be sent")


def test_ctrl_c_while_sending_names_the_batch_id_and_how_to_resend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "r-1,S,counter,5000,90817263\n")

    async def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_command, "send", interrupted)

    code = main(["batch", "submit", str(path), "--center", "C1", "--chunk", "7"], environ={})

    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted" in err
    (batch_id,) = [word for word in err.split() if len(word) == 32 and word.isalnum()]
    assert f"--batch-id {batch_id} --chunk 7" in err
    assert "Traceback" not in err


def _batch_ids(monkeypatch: pytest.MonkeyPatch, path: Path, *flags: str) -> list[str]:
    """The chunk ids `batch submit` sends the file under."""
    sent: list[str] = []

    async def record(url: str, prefix: str, batches: list[Any], *args: Any, **kwargs: Any) -> Any:
        sent.extend(batch.batch_id for batch in batches)
        return [events_pb2.BatchResult(batch_id=batch.batch_id) for batch in batches]

    monkeypatch.setattr(batch_command, "send", record)
    main(["batch", "submit", str(path), *flags], environ={})
    return sent


def test_the_same_file_sent_again_without_a_batch_id_is_the_same_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "r-1,S,counter,5000,90817263\nr-2,S,counter,5000,90817264\n")
    first = _batch_ids(monkeypatch, path, "--center", "C1", "--chunk", "1")

    again = _batch_ids(monkeypatch, path, "--center", "C1", "--chunk", "1")
    other_chunk = _batch_ids(monkeypatch, path, "--center", "C1", "--chunk", "2")
    other_centre = _batch_ids(monkeypatch, path, "--center", "C2", "--chunk", "1")
    path.write_text(HEADER + "r-1,S,counter,5000,90817263\nr-2,S,counter,5000,90817265\n")
    changed = _batch_ids(monkeypatch, path, "--center", "C1", "--chunk", "1")
    given = _batch_ids(monkeypatch, path, "--center", "C1", "--batch-id", "mine")

    assert first == again
    assert first[0].endswith("/0")
    assert len(first[0]) == 34
    # Another --chunk keeps the id, so its first chunk is refused as batch-id-reused.
    assert other_chunk == [first[0]]
    assert other_centre[0] != first[0]
    assert changed[0] != first[0]
    assert given == ["mine/0"]


@pytest.mark.parametrize("wait", ["-5", "0", "nan", "inf", "soon"])
def test_a_wait_that_is_not_a_finite_positive_number_exits_2_before_anything_is_sent(
    wait: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "r-1,S,counter,5000,90817263\n")
    monkeypatch.setattr(batch_command, "send", _never_called)

    with pytest.raises(SystemExit) as exit_info:
        main(["batch", "submit", str(path), "--center", "C1", "--wait", wait], environ={})

    assert exit_info.value.code == 2
    assert "error: argument --wait:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("batch_id", "complaint"),
    [
        # pamqp's TypeError (a traceback, exit 1) before: the message id holds 255 bytes.
        ("b" * 300, "batch_id must be at most 200 characters"),
        ("ع" * 140, "batch_id must be at most 255 bytes in UTF-8"),
        ("b" * 199, "(here up to '/0'), and batch_id must be at most 200 characters"),
        ("ع" * 127, "batch_id must be at most 255 bytes"),
        ("a\x1fb", "batch_id must not contain control or invisible characters"),
        ("a\u200bb", "batch_id must not contain control or invisible characters"),
    ],
)
def test_a_batch_id_the_worker_or_amqp_would_refuse_exits_2_before_anything_is_sent(
    batch_id: str,
    complaint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "r-1,S,counter,5000,90817263\n")
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1", "--batch-id", batch_id], {})

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: --batch-id: chunk ids are the batch id and '/<n>'")
    assert complaint in err


def test_a_batch_id_is_bounded_with_its_last_chunk_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "".join(f"r-{n},S,counter,5000,1\n" for n in range(11)))

    def ids(batch_id: str, chunk: str) -> list[str]:
        return _batch_ids(
            monkeypatch, path, "--center", "C1", "--batch-id", batch_id, "--chunk", chunk
        )

    assert ids("ع" * 126, "11") == ["ع" * 126 + "/0"]
    assert ids("b" * 198, "11") == ["b" * 198 + "/0"]
    assert ids("b" * 197, "1")[-1] == "b" * 197 + "/10"
    assert ids("b" * 198, "1") == []
