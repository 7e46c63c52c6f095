"""sanadctl batch submit reads its file strictly and names what it cannot read."""

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from sanad.cli import batch as batch_command
from sanad.cli.__main__ import main
from sanad.cli.batch_file import BadFile, item_of, read_numbered
from sanad.domain.codes import request_id_violations
from sanad.v1 import events_pb2

HEADER = "request_id,service_code,channel,fee_baisa,civil_number\n"


async def _never_called(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("nothing may be sent")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.ndjson", b'{"fee_baisa": 1}\n\n{"request_id":\n', "line 3: not JSON"),
        ("rows.ndjson", b'{"fee_baisa": 1}\n["r-2"]\n', "line 2: not a JSON object"),
        ("rows.csv", b"request_id,fee_baisa\nr-1,\xff\xfe\n", "not UTF-8 text"),
        (
            "rows.ndjson",
            b'{"fee_baisa": 1}\n{"request_id": "a\\ud800"}\n',
            "line 2: not UTF-8 text",
        ),
        ("rows.ndjson", b'{"\\udfff": "r-1"}\n', "line 1: not UTF-8 text"),
        (
            "rows.csv",
            b"request_id,fee_baisa\nr-1,1\n" + b"x" * 200_000 + b"\n",
            "near line 3: field larger",
        ),
    ],
)
def test_an_unreadable_file_is_named_with_its_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(BadFile, match=message):
        read_numbered(path)[0]


def test_a_short_csv_row_reads_its_missing_values_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("request_id,service_code,fee_baisa,civil_number\nr-1,ROP-VISA,5000\n")

    assert read_numbered(path)[0] == [
        {"request_id": "r-1", "service_code": "ROP-VISA", "fee_baisa": "5000", "civil_number": ""}
    ]


def test_json_nulls_read_as_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"request_id": null, "fee_baisa": 5000}\n')

    assert read_numbered(path)[0] == [{"request_id": "", "fee_baisa": "5000"}]


@pytest.mark.parametrize(
    ("text", "fee"),
    [("5000", 5000), (" -5 ", -5), ("²", -1), ("--5", -1), ("1" * 19, -1), ("5.5", -1), ("", -1)],
)
def test_a_fee_that_is_not_a_whole_number_the_message_can_carry_is_sent_as_minus_one(
    text: str, fee: int
) -> None:
    assert item_of({"fee_baisa": text}).fee_baisa == fee


def test_a_missing_file_exits_2_with_its_name_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.csv"

    code = main(["batch", "submit", str(missing)], environ={})

    err = capsys.readouterr().err
    assert code == 2
    assert f"{missing}: No such file or directory" in err
    assert "Traceback" not in err


def test_a_lone_surrogate_in_ndjson_exits_2_with_its_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sur.ndjson"
    path.write_text('{"request_id": "a\\ud800", "fee_baisa": 5000}\n')

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}, line 1: not UTF-8 text" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("fee", "message"),
    [
        ("5.000", "fee_baisa '5.000' is not a whole number of baisa"),
        ('"5,000"', "fee_baisa '5,000' is not a whole number of baisa"),
        ("1" * 19, "fee_baisa '1{19}' is not a whole number of baisa"),
        ("", "fee_baisa is empty"),
    ],
)
def test_a_fee_that_is_no_whole_number_of_baisa_is_a_bad_row_named_by_its_line(
    tmp_path: Path, fee: str, message: str
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"{HEADER}r-1,S,counter,5000,90817263\nr-2,S,counter,{fee},90817263\n")

    with pytest.raises(BadFile, match=rf"rows.csv, line 3: {message}"):
        read_numbered(path)[0]


def test_an_ndjson_row_without_a_fee_is_a_bad_row_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.ndjson"
    path.write_text('{"request_id": "r-1", "fee_baisa": 0}\n{"request_id": "r-2"}\n')

    with pytest.raises(BadFile, match="line 2: fee_baisa is empty"):
        read_numbered(path)[0]


def test_a_csv_whose_header_names_no_column_exits_2_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "semicolons.csv"
    path.write_text(HEADER.replace(",", ";") + "r-1;S;counter;5000;90817263\n")
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 2
    assert f"{path}, line 1: the header names none of the columns" in capsys.readouterr().err


def test_the_rejected_file_names_each_refused_row_by_its_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    # After a blank line, the second row is on line 4 and the third on line 5.
    path.write_text(HEADER + 'a,S,,1,90817263\n\nb,S,,1,90817264\n"c,c",S,,1,90817265\n')

    async def refuse_rows_1_and_2(*_: Any, **__: Any) -> list[events_pb2.BatchResult]:
        result = events_pb2.BatchResult(batch_id="b/0")
        result.accepted.add(index=0, transaction_id="t")
        for index in (1, 2):
            result.rejected.add(index=index).violations.add(field="fee_baisa", description="no")
        return [result]

    monkeypatch.setattr(batch_command, "send", refuse_rows_1_and_2)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 1
    with (tmp_path / "rows.csv.rejected.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(row["line"], row["request_id"]) for row in written] == [("4", "b"), ("5", "c,c")]
    assert written[0]["civil_number"] == "*****264"


def test_a_header_with_spaces_around_its_names_reads_each_row_by_column(tmp_path: Path) -> None:
    # As the README lists the columns; before, every row read "fee_baisa is empty".
    path = tmp_path / "rows.csv"
    path.write_text(
        " request_id, service_code, channel , fee_baisa, civil_number\n"
        "r-1,ROP-VISA,counter,5000,90817263\n"
    )

    (row,) = read_numbered(path)[0]

    item = item_of(row)
    assert (item.request_id, item.service_code, item.fee_baisa) == ("r-1", "ROP-VISA", 5000)
    assert item.beneficiary_civil_number == "90817263"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        # Before: the last column of the name won, unseen.
        (
            "rows.csv",
            "request_id,fee_baisa,channel, fee_baisa\nr-1,5000,counter,4000\n",
            "rows.csv, line 1: the header names column 'fee_baisa' twice",
        ),
        # Before: the values past the header's columns were dropped.
        (
            "rows.csv",
            HEADER + "r-1,S,counter,5000,90817263\nr-2,Al Khuwair, Muscat,counter,5000,1\n",
            "rows.csv, line 3: 6 values, but the header names 5 columns",
        ),
        # Before: "rows: 0", exit 0.
        ("rows.csv", "", "rows.csv: no rows to send"),
        ("rows.csv", HEADER, "rows.csv: no rows to send"),
        ("rows.ndjson", "\n\n", "rows.ndjson: no rows to send"),
        # Before: sent as "['a']", "True" and "{'a': 1}".
        (
            "rows.ndjson",
            '{"request_id": "r-1", "fee_baisa": 1}\n{"request_id": ["a"], "fee_baisa": 1}\n',
            """rows.ndjson, line 2: 'request_id' is ["a"], not a string, a number or null""",
        ),
        (
            "rows.ndjson",
            '{"civil_number": true, "fee_baisa": 1}\n',
            "line 1: 'civil_number' is true, not a string",
        ),
        (
            "rows.ndjson",
            '{"service_code": {"a": 1}, "fee_baisa": 1}\n',
            """line 1: 'service_code' is {"a": 1}, not a string""",
        ),
        (
            "rows.ndjson",
            '{"fee_baisa": 5000, "fee_baisa": 4000}\n',
            "rows.ndjson, line 1: the object names 'fee_baisa' twice",
        ),
        # Before: a traceback (RecursionError, ValueError) and exit 1 (CLI helper).
        (
            "rows.ndjson",
            '{"fee_baisa": 1}\n' + "[" * 100_000 + "\n",
            "rows.ndjson, line 2: not a row (arrays or objects nested too deep)",
        ),
        (
            "rows.ndjson",
            '{"fee_baisa": ' + "1" * 5000 + "}\n",
            "rows.ndjson, line 1: not a row (a number of over 4,300 digits)",
        ),
    ],
)
def test_a_file_whose_values_cannot_all_be_sent_as_written_exits_2_naming_where(
    tmp_path: Path,
    name: str,
    content: str,
    *,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {tmp_path}/")
    assert message in err
    assert err.count("\n") == 1


def test_unnamed_columns_and_json_numbers_still_read(tmp_path: Path) -> None:
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text(HEADER.strip() + ",,\nr-1,S,counter,5000,90817263,,\n")
    ndjson = tmp_path / "rows.ndjson"
    ndjson.write_text('{"request_id": 7, "fee_baisa": 5000, "center_id": null}\n')

    assert read_numbered(csv_path)[0][0]["fee_baisa"] == "5000"
    assert read_numbered(ndjson)[0] == [{"request_id": "7", "fee_baisa": "5000", "center_id": ""}]


STALE = "line,request_id,reason\n2,a,fee_baisa: no\n"


def sent_before(tmp_path: Path) -> tuple[Path, Path]:
    """A one-row file, and the rejected-rows file an earlier send of it left."""
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "a,S,,1,90817263\n")
    stale = tmp_path / "rows.csv.rejected.csv"
    stale.write_text(STALE)
    return path, stale


def test_a_send_that_rejects_nothing_removes_the_rejected_file_of_an_earlier_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, stale = sent_before(tmp_path)

    async def accept_all(*_: Any, **__: Any) -> list[events_pb2.BatchResult]:
        result = events_pb2.BatchResult(batch_id="b/0")
        result.accepted.add(index=0, transaction_id="t")
        return [result]

    monkeypatch.setattr(batch_command, "send", accept_all)

    code = main(["--json", "batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 0
    assert not stale.exists()
    assert json.loads(capsys.readouterr().out)["rejected_file"] == ""


def test_a_send_refused_whole_keeps_the_rejected_file_of_an_earlier_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sent again with another --chunk (batch-id-reused) or by a user not allowed: the rows the
    # earlier file names are still refused and unstored. Before, the file was removed.
    path, stale = sent_before(tmp_path)

    async def refuse_whole(*_: Any, **__: Any) -> list[events_pb2.BatchResult]:
        return [events_pb2.BatchResult(batch_id="b/0", refused_reason="batch-id-reused: no")]

    monkeypatch.setattr(batch_command, "send", refuse_whole)

    code = main(["--json", "batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 1
    assert stale.read_text() == STALE
    assert json.loads(capsys.readouterr().out)["rejected_file"] == ""


def test_a_rejected_file_that_cannot_be_written_is_named_as_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "a,S,,1,90817263\n")
    (tmp_path / "rows.csv.rejected.csv").mkdir()

    async def reject_all(*_: Any, **__: Any) -> list[events_pb2.BatchResult]:
        result = events_pb2.BatchResult(batch_id="b/0")
        result.rejected.add(index=0).violations.add(field="fee_baisa", description="no")
        return [result]

    monkeypatch.setattr(batch_command, "send", reject_all)

    code = main(["--json", "batch", "submit", str(path), "--center", "C1"], environ={})

    out, err = capsys.readouterr()
    assert code == 1
    assert "rows.csv.rejected.csv: Is a directory" in err
    assert json.loads(out)["rejected_file"] == ""


def test_rows_without_a_request_id_are_warned_of_and_still_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A corrected file is another batch: its rows without a request id are stored again
    # (operator helper: two such rows, fixed and sent again, were four transactions).
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + ",S,,1,90817263\na,S,,1,90817264\n ,S,,1,90817265\n")
    sent: list[int] = []

    async def accept_all(_: Any, __: Any, batches: Any, *___: Any, **____: Any) -> Any:
        sent.append(sum(len(b.items) for b in batches))
        result = events_pb2.BatchResult(batch_id="b/0")
        for index in range(3):
            result.accepted.add(index=index, transaction_id=f"t{index}")
        return [result]

    monkeypatch.setattr(batch_command, "send", accept_all)

    assert main(["batch", "submit", str(path), "--center", "C1"], environ={}) == 0
    assert sent == [3]
    err = capsys.readouterr().err
    assert "warning: 2 of 3 rows have no request_id" in err
    path.write_text(HEADER + "a,S,,1,90817263\n")
    assert main(["batch", "submit", str(path), "--center", "C1"], environ={}) == 0
    assert "warning" not in capsys.readouterr().err


def test_values_are_read_without_the_spaces_around_them(tmp_path: Path) -> None:
    # A row written as the README lists the columns: " 90817263" was refused as a civil number,
    # and " r-1" was another request id than "r-1".
    path = tmp_path / "rows.csv"
    path.write_text(HEADER.strip() + ",center_id\nr-1, ROP-VISA, counter, 5000, 90817263, C9 \n")
    (row,), _ = read_numbered(path)
    item = item_of(row)
    assert (item.request_id, item.service_code, item.beneficiary_civil_number) == (
        "r-1",
        "ROP-VISA",
        "90817263",
    )
    assert (item.center_id, item.fee_baisa, item.channel) == ("C9", 5000, 1)


@pytest.mark.parametrize(
    "request_id",
    ["r-1\u2028", "\u0085r-1", "r-1\u2029", "\u00a0r-1", "r-1\u3000", "r-1\x1f", "r-1\v"],
)
def test_a_request_id_is_sent_with_what_is_no_csv_layout_around_it(
    tmp_path: Path, request_id: str
) -> None:
    # str.strip() took these off too, and a row whose request id intake refuses over gRPC was
    # stored under another id. Sent as written, the worker refuses it on request_id as intake
    # does (the same rule: request_id_violations).
    path = tmp_path / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [HEADER.strip().split(","), [f" {request_id}\t", "S", "counter", "5000", "90817263"]]
        )
    (row,), _ = read_numbered(path)
    sent = item_of(row).request_id
    assert sent == request_id
    assert [v.field for v in request_id_violations(sent)] == ["request_id"]


def test_a_request_id_of_unicode_spaces_alone_is_not_counted_as_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    async def send(url: str, prefix: str, batches: Any, *args: Any, **kwargs: Any) -> Any:
        sent.extend(item.request_id for batch in batches for item in batch.items)
        return [events_pb2.BatchResult(batch_id=batch.batch_id) for batch in batches]

    monkeypatch.setattr(batch_command, "send", send)
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "\u2028,S,,1,90817263\n", encoding="utf-8")
    main(["batch", "submit", str(path), "--center", "C1"], environ={})
    assert sent == ["\u2028"]  # the worker refuses it on request_id, naming the row
    assert "no request_id" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # A stray quote closed three lines on: the rows between were read as one value.
        (
            'q-1,S,counter,5000,90817263\n"q-2\nq-3,S,counter,5000,70000003\nq-4",S,counter,'
            "5000,81726354\nq-5,S,counter,5000,71111111\n",
            "line 3: a quoted value runs on to line 5",
        ),
        # Opened in the last column and never closed: every later line is swallowed.
        (
            'q-1,S,counter,5000,"90817263\nq-2,S,counter,5000,70000003\n'
            "q-3,S,counter,5000,71111111\n",
            "line 2: a quoted value runs on to line 4",
        ),
        # Opened on the last line: its line break is all it swallows.
        (
            'q-1,S,counter,5000,90817263\n"q-2,S,counter,5000,1\n',
            "line 3: a quoted value is not closed",
        ),
        # A line break of any kind, in a value quoted on purpose.
        ('q-1,S,counter,5000,"9081\r\n7263"\r\n', "line 2: a quoted value runs on to line 3"),
    ],
)
def test_a_csv_value_that_runs_over_lines_exits_2_naming_where_it_starts(
    tmp_path: Path,
    rows: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "stray.csv"
    path.write_bytes((HEADER + rows).encode())
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}, {message} (a stray double quote?)" in err
    assert "70000003" not in err
    assert not (tmp_path / "stray.csv.rejected.csv").exists()


def test_blank_lines_and_quoted_commas_still_name_each_row_by_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + '\nq-1,S,counter,5000,90817263\n\n\n"q,2",S,counter,5000,1\n')

    rows, lines = read_numbered(path)

    assert [row["request_id"] for row in rows] == ["q-1", "q,2"]
    assert lines == [3, 6]


def test_rows_of_commas_alone_and_blank_lines_before_the_header_are_blank_lines(
    tmp_path: Path,
) -> None:
    # Excel ends an export with rows of commas: they stopped the file, "fee_baisa is empty",
    # and a blank first line was read as a header of no columns (batch hunt).
    path = tmp_path / "rows.csv"
    path.write_text("\n \n" + HEADER + "q-1,S,counter,5000,90817263\n,,,,\n , , ,,\n")

    rows, lines = read_numbered(path)

    assert [row["request_id"] for row in rows] == ["q-1"]
    assert lines == [4]


def test_a_header_after_blank_lines_is_named_by_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("\n\nrequest_id;service_code\nq-1;S\n")

    with pytest.raises(BadFile, match=r"rows\.csv, line 3: the header names none"):
        read_numbered(path)


def test_a_header_s_names_are_read_in_any_case(tmp_path: Path) -> None:
    # A spreadsheet's Request_ID was read by no one: every row went without its request id
    # (batch hunt).
    path = tmp_path / "rows.csv"
    path.write_text(
        "Request_ID,SERVICE_CODE,Channel,Fee_Baisa,Civil_Number\nq-1,S,counter,5000,1\n"
    )

    rows, _ = read_numbered(path)

    assert rows == [
        {
            "request_id": "q-1",
            "service_code": "S",
            "channel": "counter",
            "fee_baisa": "5000",
            "civil_number": "1",
        }
    ]


def test_one_column_named_twice_in_two_cases_is_a_header_naming_it_twice(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("request_id,Request_ID,service_code\nq-1,q-2,S\n")

    with pytest.raises(BadFile, match="names column 'request_id' twice"):
        read_numbered(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        # A misspelt column: its rows went as batch, the channel dropped without a word.
        (
            "rows.csv",
            "request_id,service_code,chanel,fee_baisa,civil_number\nq-1,S,mobile,5000,1\n",
            "line 1: column 'chanel' is none of request_id",
        ),
        # The proto's name for the civil number: every row refused for an empty one.
        (
            "rows.csv",
            "request_id,service_code,fee_baisa,beneficiary_civil_number\nq-1,S,5000,12345678\n",
            "line 1: column 'beneficiary_civil_number' is none of",
        ),
        # A value under a trailing comma's unnamed column.
        ("rows.csv", HEADER.strip() + ",\nq-1,S,,5000,1,C2\n", "line 2: a value under a column"),
        # An NDJSON key: the row was filed under the --center centre.
        (
            "rows.ndjson",
            '{"request_id": "q-1", "fee_baisa": 5000}\n{"fee_baisa": 5000, "centre_id": "C2"}\n',
            "line 2: key 'centre_id' is none of",
        ),
    ],
)
def test_a_column_or_key_that_would_be_sent_by_no_one_exits_2_naming_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    name: str,
    content: str,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    monkeypatch.setattr(batch_command, "send", _never_called)

    code = main(["batch", "submit", str(path), "--center", "C1"], environ={})

    assert code == 2
    err = capsys.readouterr().err
    assert f"error: {path}, {message}" in err
    assert err.count("\n") == 1


def test_ndjson_keys_are_read_in_any_case_as_a_csv_header_s_names(tmp_path: Path) -> None:
    # {"Channel": "mobile"} went unread: the row was stored as batch.
    path = tmp_path / "rows.ndjson"
    path.write_text('{"Request_ID": "q-1", "Channel": "mobile", "FEE_BAISA": 5000}\n')

    assert read_numbered(path)[0] == [
        {"request_id": "q-1", "channel": "mobile", "fee_baisa": "5000"}
    ]


def test_one_ndjson_key_given_twice_in_two_cases_is_a_key_named_twice(tmp_path: Path) -> None:
    path = tmp_path / "rows.ndjson"
    path.write_text('{"request_id": "q-1", "Request_ID": "q-2", "fee_baisa": 1}\n')

    with pytest.raises(BadFile, match="names 'request_id' twice"):
        read_numbered(path)
