"""Asks a process's standard grpc.health.v1 service once; exit 0 only if it answers SERVING.

Compose health checks and Kubernetes exec probes (where native `grpc:` probes cannot speak TLS)
run this inside the same image, so no extra binary is shipped.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.cli.arguments import positive_seconds, target

EXIT_SERVING = 0
EXIT_NOT_SERVING = 1
EXIT_UNREACHABLE = 2


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; TLS options are optional and only needed off the dev profile."""
    parser = argparse.ArgumentParser(prog="python -m sanad.probe", description=__doc__)
    # A bad flag is a usage error naming it, never an answer the probe did not get: --timeout
    # -1 or nan failed every check as DEADLINE_EXCEEDED (exit 2, a healthy pod restarted), and
    # an empty --addr was gRPC core's UNKNOWN.
    parser.add_argument("--addr", type=target, required=True, help="host:port of the gRPC endpoint")
    parser.add_argument("--service", default="", help="service name to ask about ('' = overall)")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=2.0,
        help="seconds before giving up: a finite number above zero",
    )
    parser.add_argument("--tls-ca", type=Path, help="CA bundle; turns TLS on")
    parser.add_argument("--tls-cert", type=Path, help="client certificate for mutual TLS")
    parser.add_argument("--tls-key", type=Path, help="client key for mutual TLS")
    parser.add_argument("--tls-server-name", help="name to expect in the server certificate")
    options = parser.parse_args(argv)
    # gRPC aborts the whole process on a client certificate without its key.
    if (options.tls_cert is None) != (options.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if options.tls_cert is not None and options.tls_ca is None:
        parser.error("--tls-cert needs --tls-ca (TLS is on only with a CA)")
    return options


def open_channel(options: argparse.Namespace) -> grpc.Channel:
    """A plaintext channel, or a TLS one when a CA is given."""
    if options.tls_ca is None:
        return grpc.insecure_channel(options.addr)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=options.tls_ca.read_bytes(),
        private_key=options.tls_key.read_bytes() if options.tls_key else None,
        certificate_chain=options.tls_cert.read_bytes() if options.tls_cert else None,
    )
    channel_options = []
    if options.tls_server_name:
        channel_options.append(("grpc.ssl_target_name_override", options.tls_server_name))
    return grpc.secure_channel(options.addr, credentials, options=channel_options)


def check(options: argparse.Namespace) -> int:
    """One Check call; the exit code says SERVING, anything else (a service the server does
    not know included), or unreachable (which a TLS file that cannot be read makes it too: the
    probe cannot ask)."""
    try:
        channel = open_channel(options)
    except OSError as error:
        print(f"{options.addr}: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_UNREACHABLE
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=options.service), timeout=options.timeout
            )
        except grpc.RpcError as error:
            print(f"{options.addr}: {error.code().name}", file=sys.stderr)
            # The server answered that it knows no such service: a status, not unreachable.
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return EXIT_NOT_SERVING
            return EXIT_UNREACHABLE
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{options.addr}: {status}")
    return (
        EXIT_SERVING if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_NOT_SERVING
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return check(parse(argv))


if __name__ == "__main__":
    sys.exit(main())
