"""sanadctl when no service answers at the address it calls: one line naming the service, the
address, why, and the flag or variable to fix, instead of gRPC's "failed to connect to all
addresses; … Socket closed"."""

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sanad.cli.__main__ import main
from sanad.devstack import certs


def _server(
    credentials: grpc.ServerCredentials | None, max_connections: int | None = None
) -> Iterator[str]:
    """A server with health alone (no Sanad service), on a free port."""
    options = (
        []
        if max_connections is None
        else [("grpc.max_allowed_incoming_connections", max_connections)]
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=options)
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _mutual_tls(pki: Path) -> grpc.ServerCredentials:
    """Server credentials as `make run`'s: mutual TLS with the dev CA."""
    pair = ((pki / "registry.key").read_bytes(), (pki / "registry.pem").read_bytes())
    return grpc.ssl_server_credentials(
        [pair], root_certificates=(pki / "ca.pem").read_bytes(), require_client_auth=True
    )


@pytest.fixture
def mutual_tls(pki: Path) -> Iterator[str]:
    """A server that, as `make run`'s, serves mutual TLS with the dev CA."""
    yield from _server(_mutual_tls(pki))


@pytest.fixture
def full_mutual_tls(pki: Path) -> Iterator[str]:
    """A mutual TLS server holding as many connections as it takes (SANAD_GRPC_MAX_CONNECTIONS
    at 1): another client holds the one."""
    for address in _server(_mutual_tls(pki), max_connections=1):
        holder = grpc.secure_channel(
            address,
            grpc.ssl_channel_credentials(
                *((pki / name).read_bytes() for name in ("ca.pem", "admin.key", "admin.pem"))
            ),
            # Its own connection: not one sanadctl's channel could share.
            options=[("grpc.ssl_target_name_override", "localhost"), ("holder", 1)],
        )
        with holder:
            health_pb2_grpc.HealthStub(holder).Check(health_pb2.HealthCheckRequest(), timeout=5)
            yield address


@pytest.fixture
def plaintext() -> Iterator[str]:
    """A plaintext server, as `SANAD_DEVSTACK_PLAINTEXT=1 make run`'s."""
    yield from _server(None)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass


@pytest.fixture
def cut_mid_call() -> Iterator[str]:
    """An intake whose GetTransaction is in progress when its connection breaks (the process
    died, say): a plaintext server behind a proxy that cuts both sockets once the call runs."""
    running = threading.Event()

    def get_transaction(request: bytes, context: grpc.ServicerContext) -> bytes:
        running.set()
        time.sleep(5)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "sanad.v1.IntakeService",
        {"GetTransaction": grpc.unary_unary_rpc_method_handler(get_transaction)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    listener = socket.create_server(("127.0.0.1", 0))

    def proxy() -> None:
        client = listener.accept()[0]
        upstream = socket.create_connection(("127.0.0.1", port))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()
        running.wait(10)
        for end in (client, upstream):
            end.shutdown(socket.SHUT_RDWR)
            end.close()

    threading.Thread(target=proxy, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    server.stop(None)


def unused_target() -> str:
    """An address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def errors(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """sanadctl's exit code and stderr lines, ignoring the caller's environment."""
    code = main(["--timeout", "5", *argv], environ={})
    return code, capsys.readouterr().err.splitlines()


def test_a_tls_service_called_in_plaintext_says_to_source_sanadctl_env(
    mutual_tls: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = errors(capsys, "--intake", mutual_tls, "show", "T-1")

    assert code == 1
    assert err == [
        f"error: UNAVAILABLE: cannot reach the intake at {mutual_tls} (it closed the"
        " connection): it serves TLS, as `make run` does, and sanadctl called in plaintext:"
        " `source .data/sanadctl.env` (what `make run` issued), or give --ca, --cert and --key"
    ]


def test_a_mutual_tls_service_called_without_a_client_certificate_says_so(
    mutual_tls: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = str(pki / "ca.pem")
    code, err = errors(capsys, "--registry", mutual_tls, "--ca", ca, "centers", "get", "C-1")

    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(f"error: UNAVAILABLE: cannot reach the registry at {mutual_tls}")
    assert "it asks for a client certificate: give --cert and --key" in err[0]


def test_a_service_whose_certificate_another_ca_issued_names_the_tls_flags(
    mutual_tls: str, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path_factory.mktemp("other-pki")
    certs.make_dev_pki(other)
    flags = [f"--{name}={other / f'admin.{suffix}'}" for name, suffix in (("cert", "pem"),)]
    flags += ["--ca", str(other / "ca.pem"), "--key", str(other / "admin.key")]
    code, err = errors(capsys, "--metrics", mutual_tls, *flags, "stats", "C-1")

    assert code == 1
    assert len(err) == 1
    # Both dev CAs have one name: BoringSSL finds the issuer by it, and its signature fails.
    assert "(the TLS handshake failed: BAD_SIGNATURE)" in err[0]
    assert "--ca, --cert and --key must come from the CA that issued" in err[0]


def test_nothing_listening_names_the_flag_and_variable_that_move_the_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = unused_target()
    code, err = errors(capsys, "--registry", down, "centers", "get", "C-1")

    assert code == 1
    assert err == [
        f"error: UNAVAILABLE: cannot reach the registry at {down} (nothing listens there): start"
        " the stack (`make run`), or give the registry's address with --registry or"
        " SANAD_REGISTRY_TARGET"
    ]


def test_a_client_certificate_another_ca_issued_is_named_as_refused(
    mutual_tls: str,
    pki: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path_factory.mktemp("other-client")
    certs.make_dev_pki(other)
    flags = ["--ca", str(pki / "ca.pem"), "--cert", str(other / "admin.pem")]
    flags += ["--key", str(other / "admin.key")]
    code, err = errors(capsys, "--intake", mutual_tls, *flags, "show", "T-1")

    assert code == 1
    assert len(err) == 1
    assert "(it closed the connection): it did not take the client certificate" in err[0]


def test_an_address_serving_another_service_is_named_not_method_not_found(
    plaintext: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = errors(capsys, "--registry", plaintext, "centers", "get", "C-1")

    assert code == 1
    assert err == [
        f"error: UNIMPLEMENTED: cannot reach the registry at {plaintext} (it serves another"
        " service): give the registry's address with --registry or SANAD_REGISTRY_TARGET"
    ]


def test_a_plaintext_service_called_with_tls_says_it_does_not_speak_tls(
    plaintext: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--ca", str(pki / "ca.pem"), "--cert", str(pki / "admin.pem")]
    flags += ["--key", str(pki / "admin.key")]
    code, err = errors(capsys, "--intake", plaintext, *flags, "show", "T-1")

    assert code == 1
    assert len(err) == 1
    assert "(it does not speak TLS): a plaintext stack (SANAD_DEVSTACK_PLAINTEXT=1)" in err[0]


def test_health_says_why_each_target_did_not_answer_and_what_to_do_once(
    mutual_tls: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--registry", mutual_tls, "--intake", mutual_tls, "--metrics", unused_target()]
    code = main([*argv, "--timeout", "5", "health"], environ={})

    assert code == 1
    captured = capsys.readouterr()
    assert [line.split("  ")[-1] for line in captured.out.splitlines()] == [
        "UNAVAILABLE (it closed the connection)",
        "UNAVAILABLE (it closed the connection)",
        "UNAVAILABLE (nothing listens there)",
    ]
    assert captured.err.splitlines() == [
        "warning: it serves TLS, as `make run` does, and sanadctl called in plaintext:"
        " `source .data/sanadctl.env` (what `make run` issued), or give --ca, --cert and --key"
    ]


def test_a_service_holding_all_the_connections_it_takes_is_not_blamed_on_the_certificate(
    full_mutual_tls: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The right CA, certificate and key: the server closed the connection as it took it, at
    # its SANAD_GRPC_MAX_CONNECTIONS, and sanadctl said the certificate was not taken.
    flags = ["--ca", str(pki / "ca.pem"), "--cert", str(pki / "admin.pem")]
    flags += ["--key", str(pki / "admin.key")]
    code, err = errors(capsys, "--intake", full_mutual_tls, *flags, "show", "T-1")

    assert code == 1
    assert err == [
        f"error: UNAVAILABLE: cannot reach the intake at {full_mutual_tls} (it holds all the"
        " connections it takes): it closed the connection as it took it"
        " (SANAD_GRPC_MAX_CONNECTIONS): try again shortly; if it stays full, see what holds its"
        " connections"
    ]


def test_a_connection_broken_during_the_call_is_not_read_as_a_tls_refusal(
    cut_mid_call: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The service had taken the call ("Stream removed (Socket closed)"): sanadctl said it
    # serves TLS and was called in plaintext, sending the operator to the wrong settings.
    code, err = errors(capsys, "--intake", cut_mid_call, "show", "T-1")

    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: UNAVAILABLE: ")
    assert "Socket closed" in err[0]
    assert "cannot reach" not in err[0]
