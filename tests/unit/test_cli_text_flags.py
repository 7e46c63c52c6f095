"""sanadctl refuses arguments no call can carry as usage errors (exit 2, one line): bytes that
are not UTF-8 (a traceback before: UnicodeEncodeError), an identity or token gRPC metadata
cannot hold (INTERNAL "Invalid metadata" before), an empty service address (gRPC's own trace
before), a port outside 1 to 65535 (gRPC wrapped it to another port)."""

import os

import pytest

from sanad.cli.__main__ import main
from sanad.cli.arguments import target

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
        # gRPC took 84147 as 18611, another service's port, without a word (CLI helper).
        (["--registry", "127.0.0.1:84147", "centers", "list"], {}, "port 84147 is not a port"),
        (["--intake", "host:0", "show", "T1"], {}, "--intake: port 0 is not a port (1 to 65535)"),
        (["--registry", "[::1]:-1", "centers", "list"], {}, "port -1 is not a port"),
        # gRPC's own trace and a row of status UNKNOWN before.
        (["health", "--target", ""], {}, "--target: must be HOST:PORT, not empty"),
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


@pytest.mark.parametrize(
    "given", ["127.0.0.1:50051", "[::1]:50051", "dns:///registry:50051", "registry"]
)
def test_addresses_grpc_takes_are_taken(given: str) -> None:
    assert target(given) == given
