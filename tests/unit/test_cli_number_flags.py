"""sanadctl's whole-number flags take what their protobuf field can carry, its time flags only
times UTC can hold, its seconds flags only finite durations above zero; anything else is a usage
error naming the flag, never a traceback, a hang or a call that cannot succeed."""

import argparse
from collections.abc import Callable

import pytest

from sanad.cli.__main__ import main
from sanad.cli.arguments import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    MAX_SECONDS,
    int32,
    int64,
    positive_seconds,
)

BEYOND_INT32 = str(INT32_MAX + 1)
BEYOND_INT64 = str(INT64_MAX + 1)
HUGE = "99999999999999999999"

CATALOGUE_ADD = ["catalogue", "add", "--code", "X", "--agency", "A", "--name-ar", "ع"]
CATALOGUE_ADD += ["--name-en", "x"]
REGISTER = ["centers", "register", "--licence-number", "L", "--name-ar", "ع", "--name-en", "x"]
REGISTER += ["--owner", "o", "--governorate", "DA", "--wilayat", "DA-NIZ"]
SUBMIT = ["submit", "--center", "C", "--service", "S", "--civil-number", "12345678"]
# Nothing listens there: a flag that slipped through fails fast instead of reaching a service.
NOWHERE = ["--registry", "127.0.0.1:1", "--intake", "127.0.0.1:1", "--metrics", "127.0.0.1:1"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([*SUBMIT, "--fee-baisa", HUGE], "--fee-baisa"),
        ([*SUBMIT, "--fee-baisa", str(INT64_MIN - 1)], "--fee-baisa"),
        ([*CATALOGUE_ADD, "--fee-baisa", BEYOND_INT64, "--sla-hours", "1"], "--fee-baisa"),
        ([*CATALOGUE_ADD, "--fee-baisa", "1", "--sla-hours", BEYOND_INT32], "--sla-hours"),
        (["catalogue", "update", "X", "--fee-baisa", BEYOND_INT64], "--fee-baisa"),
        (["catalogue", "update", "X", "--sla-hours", BEYOND_INT32], "--sla-hours"),
        (["catalogue", "list", "--page-size", BEYOND_INT32], "--page-size"),
        ([*REGISTER, "--omani-staff", BEYOND_INT32, "--total-staff", "1"], "--omani-staff"),
        ([*REGISTER, "--omani-staff", "1", "--total-staff", BEYOND_INT32], "--total-staff"),
        (["centers", "list", "--page-size", "99999999999"], "--page-size"),
        (["centers", "services", "C", "--revision", BEYOND_INT64], "--revision"),
        (["list", "--center", "C", "--page-size", BEYOND_INT32], "--page-size"),
        (["report", "--year", BEYOND_INT32], "--year"),
        (["leaderboard", "--year", BEYOND_INT32], "--year"),
        (["leaderboard", "--limit", BEYOND_INT32], "--limit"),
        (["watch", "catalogue", "--since", HUGE], "--since"),
    ],
)
def test_a_number_its_protobuf_field_cannot_carry_is_a_usage_error_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, environ={})

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: must be" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("parse", "low", "high"), [(int32, INT32_MIN, INT32_MAX), (int64, INT64_MIN, INT64_MAX)]
)
def test_every_number_the_field_carries_is_taken_and_no_other(
    parse: Callable[[str], int], low: int, high: int
) -> None:
    assert (parse(str(low)), parse(str(high)), parse("-1")) == (low, high, -1)
    for outside in (low - 1, high + 1):
        with pytest.raises(argparse.ArgumentTypeError, match=f"must be from {low} to {high}"):
            parse(str(outside))
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer: '12ab'"):
        parse("12ab")


@pytest.mark.parametrize("flag", ["--after", "--before"])
@pytest.mark.parametrize(
    ("moment", "reason"),
    [
        ("0001-01-01T00:00:00+05:00", "in UTC is before year 1 or after year 9999"),
        ("9999-12-31T23:00:00-05:00", "in UTC is before year 1 or after year 9999"),
        ("yesterday", "not an ISO 8601 time: 'yesterday'"),
    ],
)
def test_a_time_utc_cannot_hold_is_a_usage_error_naming_the_flag(
    flag: str, moment: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "--center", "C", flag, moment], environ={})

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err
    assert reason in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["--timeout={}", "centers", "list"], "--timeout"),
        (["wait", "T-1", "--within={}"], "--within"),
        (["follow", "T-1", "--within={}"], "--within"),
    ],
)
@pytest.mark.parametrize(
    ("seconds", "reason"),
    [
        ("nan", "must be a finite number of seconds, not 'nan'"),
        ("inf", "must be a finite number of seconds, not 'inf'"),
        ("-inf", "must be a finite number of seconds, not '-inf'"),
        ("0", "must be greater than zero"),
        ("-5", "must be greater than zero"),
        ("1e10", f"must be at most {MAX_SECONDS} seconds"),
        ("soon", "not a number: 'soon'"),
    ],
)
def test_seconds_that_are_not_a_finite_number_above_zero_are_a_usage_error_naming_the_flag(
    command: list[str], flag: str, seconds: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*NOWHERE, *(part.format(seconds) for part in command)]

    with pytest.raises(SystemExit) as exit_info:
        main(argv, environ={})

    assert exit_info.value.code == 2
    assert f"error: argument {flag}: {reason}" in capsys.readouterr().err


def test_seconds_take_any_finite_duration_above_zero_up_to_the_limit() -> None:
    assert [positive_seconds(text) for text in ("0.001", "10", "1e3", str(MAX_SECONDS))] == [
        0.001,
        10.0,
        1000.0,
        MAX_SECONDS,
    ]
