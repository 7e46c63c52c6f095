"""What sanadctl prints for people cannot act on the terminal: values from other callers (a
centre's contact, a dead letter's type, a licence reason) show their control characters and
bidirectional overrides escaped, and cannot forge a line of the output."""

import io
import json

import pytest

from sanad.cli.output import Printer, terminal_safe


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("\x1b[2J\x1b[31mCLEARED", "\\x1b[2J\\x1b[31mCLEARED"),
        ("a@b\nlicence_status: active", "a@b\\nlicence_status: active"),
        ("ok\r", "ok\\r"),
        ("c1\x85", "c1\\u0085"),
        ("line\u2028sep", "line\\u2028sep"),
        ("gnp.exe\u202etxt", "gnp.exe\\u202etxt"),
        ("isolate\u2067x\u2069", "isolate\\u2067x\\u2069"),
    ],
)
def test_what_would_act_on_the_terminal_is_escaped(value: str, shown: str) -> None:
    assert terminal_safe(value) == shown


@pytest.mark.parametrize(
    "value",
    [
        "مركز أبراج الشرق",
        "مركز\u200fالشرق",
        "مركز\u200cالشرق",
        "a\u00a0b",
        "Nizwa, Bahla",
        "5.000 OMR",
    ],
)
def test_names_and_the_marks_arabic_text_uses_are_shown_as_they_are(value: str) -> None:
    assert terminal_safe(value) == value


def test_every_way_of_printing_for_people_escapes() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = Printer(as_json=False, out=out, err=err)
    printer.fields([("phone", "\x1b[2J"), ("email", "a@b\nlicence_status: active")])
    printer.table("letters\n", [["TransactionSubmitted", "\x1b[31mEVIL\x1b[0m\nfake line"]])
    printer.line("reason: ok\nreason: forged")
    printer.error("bad\x07bell")
    # One line per field, row and message: nothing the values held broke a line.
    assert out.getvalue().splitlines() == [
        "phone: \\x1b[2J",
        "email: a@b\\nlicence_status: active",
        "letters\\n:",
        "  TransactionSubmitted  \\x1b[31mEVIL\\x1b[0m\\nfake line",
        "reason: ok\\nreason: forged",
    ]
    assert err.getvalue() == "error: bad\\x07bell\n"
    assert "\x1b" not in out.getvalue()


def test_json_lines_keep_arabic_and_escape_what_would_act_on_the_terminal() -> None:
    out = io.StringIO()
    value = "مركز \x9b2J \u202egnp \u2028 \x1b"
    Printer(as_json=True, out=out).json({"type": value})
    line = out.getvalue()
    assert line == '{"type": "مركز \\u009b2J \\u202egnp \\u2028 \\u001b"}\n'
    assert json.loads(line) == {"type": value}
