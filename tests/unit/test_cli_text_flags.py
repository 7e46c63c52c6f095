"""sanadctl refuses arguments no call can carry as usage errors (exit 2, one line): bytes that
are not UTF-8 (a traceback before: UnicodeEncodeError), an identity or token gRPC metadata
cannot hold (INTERNAL "Invalid metadata" before), an empty service address (gRPC's own trace
before)."""

import os

import pytest

from sanad.cli.__main__ import main

NOT_UTF8 = os.fsdecode(b"\xff")


@pytest.mark.parametrize(
    ("argv", "environ", "complaint"),
    [
        (["show", NOT_UTF8], {}, "argument b'\\xff' is not valid UTF-8"),
        (["submit", "--center", NOT_UTF8], {}, "argument b'\\xff' is not valid UTF-8"),
        (["--token", NOT_UTF8, "centers", "list"], {}, "is not valid UTF-8"),
        (["--identity", "a\nb", "centers", "list"], {}, "--identity: 'a\\nb' is not printable"),
        (["centers", "list"], {"SANAD_IDENTITY": "نادي"}, "--identity: '\\u0646"),
        (["--token", "a b\tc", "centers", "list"], {}, "--token: 'a b\\tc' is not printable"),
        (["--registry", "", "centers", "list"], {}, "--registry: must be HOST:PORT, not empty"),
        (["stats", "C1"], {"SANAD_METRICS_TARGET": " "}, "--metrics: must be HOST:PORT"),
        # A new request id stood in for an empty one: a retry would have stored the
        # transaction twice.
        (
            [
                "submit",
                "--center",
                "C1",
                "--service",
                "S",
                "--fee-baisa",
                "5000",
                "--civil-number",
                "90817263",
                "--request-id",
                "",
            ],
            {},
            "argument --request-id: must not be empty",
        ),
        # No request id stood in for an empty one: a retry was not answered as the first call.
        (
            ["update-status", "T1", "--status", "completed", "--request-id", ""],
            {},
            "argument --request-id: must not be empty",
        ),
        (["cancel", "T1", "--request-id", ""], {}, "argument --request-id: must not be empty"),
    ],
)
def test_an_argument_no_call_can_carry_is_a_usage_error(
    argv: list[str], environ: dict[str, str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, environ=environ)

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err.splitlines()[-1]
    assert "Traceback" not in err
