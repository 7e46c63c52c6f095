"""Why no service answered at an address, and what to do, in one line: gRPC's own words
("failed to connect to all addresses; … Socket closed") name neither the service sanadctl
looked for nor the setting that moves it, and the commonest cause, a shell that has not
sourced `.data/sanadctl.env` calling `make run`'s TLS ports in plaintext, reads as a network
fault."""

import re
import socket
from dataclasses import dataclass

import grpc

# Where sanadctl looks for each service, and the flag and variable that move it.
SETTINGS = {
    "registry": "--registry or SANAD_REGISTRY_TARGET",
    "intake": "--intake or SANAD_INTAKE_TARGET",
    "metrics": "--metrics or SANAD_METRICS_TARGET",
}
WORKER_SETTING = "--worker or SANAD_WORKER_TARGETS"
SOURCE_ENV = "`source .data/sanadctl.env` (what `make run` issued)"
# gRPC's words for a call that found no connection ("...; last error: ...: Socket closed"); a
# connection that broke once the call ran is "Stream removed (Socket closed)" instead.
NOT_CONNECTED = "failed to connect to all addresses"
# gRPC's reply when the server has no such method: the address serves another service.
METHOD_NOT_FOUND = "Method not found!"
# How long a new connection is watched for the server closing it as it takes it: at once when
# it is full; a TLS server waits for the client's first word, a plaintext one sends its own.
FULL_PROBE_S = 0.25


@dataclass(frozen=True)
class Unreachable:
    """A call no server answered: why (short, for a table cell) and what to do."""

    reason: str
    advice: str


def unreachable(
    error: grpc.RpcError, service: str, target: str, *, tls: bool, client_certificate: bool
) -> Unreachable | None:
    """Why the call to `service` at `target` reached no server that could answer it, or None
    when a server answered (its own status then says what went wrong)."""
    if not isinstance(error, grpc.Call):
        return None
    code, details = error.code(), error.details() or ""
    address = _where(service, target)
    if code is grpc.StatusCode.UNIMPLEMENTED and details == METHOD_NOT_FOUND:
        return Unreachable("it serves another service", address)
    if code is not grpc.StatusCode.UNAVAILABLE:
        return None
    if "Socket closed" in details and NOT_CONNECTED in details:
        return _closed(target, tls=tls, client_certificate=client_certificate)
    if "Tls handshake failed" in details and "WRONG_VERSION_NUMBER" not in details:
        return Unreachable(
            f"the TLS handshake failed: {_openssl_reason(details)}",
            "--ca, --cert and --key must come from the CA that issued the service's certificate"
            f" (a PKI made again since the stack started is another CA): {SOURCE_ENV}",
        )
    return _unanswered(details, address)


def _unanswered(details: str, address: str) -> Unreachable | None:
    """No server at the address, or one that speaks no TLS."""
    if "Connection refused" in details:
        return Unreachable("nothing listens there", f"start the stack (`make run`), or {address}")
    if "errors resolving" in details or "DNS resolution failed" in details:
        return Unreachable("its host name does not resolve", address)
    if "WRONG_VERSION_NUMBER" in details:
        return Unreachable(
            "it does not speak TLS",
            "a plaintext stack (SANAD_DEVSTACK_PLAINTEXT=1) takes no --ca (SANAD_CA_FILE), and a"
            f" metrics port no gRPC at all: {address}",
        )
    return None


def closes_as_it_takes(target: str) -> bool:
    """Whether the server at HOST:PORT closes a new connection before a word is said, as a
    gRPC server holding as many connections as it takes does (SANAD_GRPC_MAX_CONNECTIONS):
    the client then sees "Socket closed" as from a TLS server that refused its handshake, and
    was told its certificate, or its lack of TLS, was at fault."""
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), FULL_PROBE_S) as probe:
            probe.settimeout(FULL_PROBE_S)
            return probe.recv(1) == b""
    except (OSError, ValueError):  # no answer in time, a reset, an address it cannot read
        return False


def _closed(target: str, *, tls: bool, client_certificate: bool) -> Unreachable:
    """A server that closed the connection: as it took it, holding all it takes; or in the
    TLS handshake, from a caller without TLS, without the client certificate mutual TLS asks
    for, or with one another CA issued."""
    if closes_as_it_takes(target):
        return Unreachable(
            "it holds all the connections it takes",
            "it closed the connection as it took it (SANAD_GRPC_MAX_CONNECTIONS): try again"
            " shortly; if it stays full, see what holds its connections",
        )
    if not tls:
        return Unreachable(
            "it closed the connection",
            "it serves TLS, as `make run` does, and sanadctl called in plaintext:"
            f" {SOURCE_ENV}, or give --ca, --cert and --key",
        )
    if not client_certificate:
        return Unreachable(
            "it closed the connection",
            f"it asks for a client certificate: give --cert and --key, or {SOURCE_ENV}",
        )
    return Unreachable(
        "it closed the connection",
        "it did not take the client certificate: --cert and --key must come from the CA that"
        " issued the service's (a PKI made again since the stack started is another CA):"
        f" {SOURCE_ENV}",
    )


def _openssl_reason(details: str) -> str:
    """The reason BoringSSL gives in gRPC's handshake error (CERTIFICATE_VERIFY_FAILED,
    BAD_SIGNATURE), or the whole error when it names none."""
    found = re.search(r"OPENSSL_internal:([A-Z0-9_]+)", details)
    return found.group(1) if found else details


def _where(service: str, target: str) -> str:
    """What moves the address sanadctl looks for the service at."""
    if service in SETTINGS:
        return f"give the {service}'s address with {SETTINGS[service]}"
    if service == target:  # `health --target`: the operator named the address itself
        return f"check the address {target}"
    return f"give the {service}'s health address with {WORKER_SETTING}"


def unreachable_line(found: Unreachable, error: grpc.Call, service: str, target: str) -> str:
    """The one error line for a call no server answered."""
    code = error.code().name
    return f"{code}: cannot reach the {service} at {target} ({found.reason}): {found.advice}"
