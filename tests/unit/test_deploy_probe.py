"""`python -m sanad.probe`, the container health check: exit 0 only for SERVING."""

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sanad.probe.__main__ import EXIT_NOT_SERVING, EXIT_SERVING, EXIT_UNREACHABLE, main


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    """A real gRPC server on a free port with only the standard health service."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_serving_process_passes_the_health_check(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    assert main(["--addr", address]) == EXIT_SERVING


def test_not_serving_process_fails_the_health_check(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    assert main(["--addr", address]) == EXIT_NOT_SERVING


def test_probe_asks_about_a_named_service(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("sanad.v1.IntakeService", health_pb2.HealthCheckResponse.NOT_SERVING)

    assert main(["--addr", address, "--service", "sanad.v1.IntakeService"]) == EXIT_NOT_SERVING


def test_unknown_service_fails_the_health_check_as_answered_not_unreachable(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    address, _ = health_server

    # The server answered (NOT_FOUND): exit 2 is kept for a probe that got no answer.
    assert main(["--addr", address, "--service", "no.such.Service"]) == EXIT_NOT_SERVING


def test_nothing_listening_fails_quickly() -> None:
    assert main(["--addr", "127.0.0.1:1", "--timeout", "0.5"]) == EXIT_UNREACHABLE


@pytest.mark.parametrize("flag", ["--tls-ca", "--tls-cert", "--tls-key"])
def test_a_tls_file_it_cannot_read_is_one_line_and_unreachable(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readable = tmp_path / "readable.pem"
    readable.write_text("not looked at")
    files = {option: str(readable) for option in ("--tls-ca", "--tls-cert", "--tls-key")}
    files[flag] = str(tmp_path / "missing.pem")

    code = main(["--addr", "127.0.0.1:1", *(part for pair in files.items() for part in pair)])

    assert code == EXIT_UNREACHABLE
    assert capsys.readouterr().err.splitlines() == [
        f"127.0.0.1:1: cannot read {tmp_path / 'missing.pem'}: No such file or directory"
    ]


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        (["--tls-ca", "ca.pem", "--tls-cert", "admin.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-ca", "ca.pem", "--tls-key", "admin.key"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "admin.pem", "--tls-key", "admin.key"], "--tls-cert needs --tls-ca"),
    ],
)
def test_a_certificate_without_its_key_or_ca_is_a_usage_error(
    given: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # gRPC aborted the whole process (a native check failure, exit 134) on a certificate
    # without its key, before the probe could say anything.
    with pytest.raises(SystemExit) as refused:
        main(["--addr", "127.0.0.1:1", *given])

    assert refused.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        # Before: DEADLINE_EXCEEDED, exit 2 (unreachable), for a server that was never asked.
        (["--addr", "127.0.0.1:1", "--timeout", "-1"], "argument --timeout: must be greater than"),
        (["--addr", "127.0.0.1:1", "--timeout", "nan"], "argument --timeout: must be a finite"),
        (["--addr", "127.0.0.1:1", "--timeout", "0"], "argument --timeout: must be greater than"),
        (["--addr", "127.0.0.1:1", "--timeout", "soon"], "argument --timeout: not a number"),
        # Before: gRPC core's UNKNOWN line, exit 2.
        (["--addr", ""], "argument --addr: must be HOST:PORT, not empty"),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_it(
    flags: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(flags)

    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err.splitlines()[-1]
