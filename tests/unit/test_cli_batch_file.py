"""sanadctl batch submit reads its file strictly and names what it cannot read."""

from pathlib import Path

import pytest

from sanad.cli.__main__ import main
from sanad.cli.batch_file import BadFile, item_of, read_rows


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.ndjson", b'{"request_id": "r-1"}\n\n{"request_id":\n', "line 3: not JSON"),
        ("rows.ndjson", b'{"request_id": "r-1"}\n["r-2"]\n', "line 2: not a JSON object"),
        ("rows.csv", b"request_id,fee_baisa\nr-1,\xff\xfe\n", "not UTF-8 text"),
        (
            "rows.csv",
            b"request_id\nr-1\n" + b"x" * 200_000 + b"\n",
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
        read_rows(path)


def test_a_short_csv_row_reads_its_missing_values_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("request_id,service_code,civil_number\nr-1,ROP-VISA\n")

    assert read_rows(path) == [
        {"request_id": "r-1", "service_code": "ROP-VISA", "civil_number": ""}
    ]


def test_json_nulls_read_as_empty_values(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"request_id": null, "fee_baisa": 5000}\n')

    assert read_rows(path) == [{"request_id": "", "fee_baisa": "5000"}]


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
