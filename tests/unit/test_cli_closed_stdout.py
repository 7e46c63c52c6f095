"""sanadctl whose reader went away (`sanadctl ... | head -1`) stops quietly, without a traceback."""

import os
import subprocess
import sys
import textwrap

from sanad.cli.__main__ import EXIT_BROKEN_PIPE

# A command whose output outgrows any pipe buffer, so a write itself meets the closed pipe.
FLOOD = textwrap.dedent(
    """
    import sys
    from sanad.cli import __main__ as cli, operations

    def flood(args, client, printer):
        for number in range(100_000):
            printer.line(f"line {number}")
        return 0

    operations.check_health = flood
    sys.exit(cli.main(["health"]))
    """
)


def run_into_a_closed_pipe(*command: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        return subprocess.run(
            [sys.executable, *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


def test_a_command_printing_into_a_closed_pipe_exits_quietly() -> None:
    result = run_into_a_closed_pipe("-c", FLOOD)
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def test_output_still_buffered_at_the_end_meets_the_closed_pipe_quietly() -> None:
    # One short line stays in stdout's buffer until the command has returned.
    result = run_into_a_closed_pipe(
        "-m", "sanad.cli", "--timeout", "0.2", "health", "--target", "127.0.0.1:1"
    )
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def run_with_closed(*descriptors: int) -> subprocess.CompletedProcess[str]:
    """sanadctl started as `sanadctl ... >&-` (and `2>&-`): Python then has no sys.stdout."""
    # A command that would otherwise try a broker where none listens.
    command = ["-m", "sanad.cli", "dead-letters", "list", "--amqp-url", "amqp://127.0.0.1:1/"]

    def close() -> None:
        for descriptor in descriptors:
            os.close(descriptor)

    return subprocess.run(
        [sys.executable, *command],
        stderr=subprocess.PIPE,
        preexec_fn=close,  # only closes descriptors, before exec
        text=True,
        timeout=60,
        check=False,
    )


def test_a_command_started_with_stdout_closed_says_so_in_one_line_and_runs_nothing() -> None:
    result = run_with_closed(1)
    assert (
        result.stderr
        == "error: standard output is closed: sanadctl has nowhere to print its results\n"
    )
    assert result.returncode == 1


def test_a_command_started_with_stdout_and_stderr_closed_fails_quietly() -> None:
    result = run_with_closed(1, 2)
    assert result.returncode == 1


def test_output_that_cannot_be_written_is_one_error_line_and_exit_1() -> None:
    # Before: a traceback ending in OSError (CLI helper, `sanadctl health > /dev/full`).
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-c", FLOOD],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.stderr == "error: cannot write the output: No space left on device\n"
    assert result.returncode == 1
