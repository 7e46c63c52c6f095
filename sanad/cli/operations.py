"""Operator commands: the health of every service and worker (statistics live in
metrics_commands)."""

import argparse
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.cli.arguments import target
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.cli.reach import Unreachable

SERVING = "SERVING"
# The workers' health servers to check as well: NAME=HOST:PORT, comma separated (`make run`
# writes them into sanadctl.env).
WORKER_TARGETS = "SANAD_WORKER_TARGETS"


def add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]", environ: Mapping[str, str]
) -> None:
    """Register the health command; the workers it checks default from the environment."""
    health = commands.add_parser("health", help="gRPC health of the services and workers")
    health.add_argument(
        "--target",
        action="append",
        default=[],
        type=target,
        metavar="HOST:PORT",
        help="check this target instead of the services and workers (repeatable)",
    )
    health.add_argument(
        "--worker",
        action="append",
        type=worker_target,
        default=_named_targets(environ.get(WORKER_TARGETS, "")),
        metavar="NAME=HOST:PORT",
        help=f"check this worker's health server too (repeatable; env {WORKER_TARGETS},"
        " comma separated, which `make run` sets)",
    )
    health.set_defaults(handler=check_health)


def check_health(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """grpc.health.v1 Check on each target; fails unless every one is SERVING. A target no
    server answered says why in its row, and the first one's remedy follows on stderr."""
    if args.target:
        targets = [(target, target) for target in args.target]
    else:
        targets = [
            ("registry", client.registry_target),
            ("intake", client.intake_target),
            ("metrics", client.metrics_target),
            *args.worker,
        ]
    checks = [(name, target, *_status_of(client, name, target)) for name, target in targets]
    if printer.as_json:
        for name, target, status, found in checks:
            reason = {"reason": found.reason} if found else {}
            printer.json({"name": name, "target": target, "status": status, **reason})
    else:
        rows = [
            (name, target, f"{status} ({found.reason})" if found else status)
            for name, target, status, found in checks
        ]
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, target, status in rows:
            printer.line(f"{name:<{width[0]}}  {target:<{width[1]}}  {status}")
    if advice := next((found.advice for *_, found in checks if found), ""):
        printer.warning(advice)
    return 0 if all(check[2] == SERVING for check in checks) else 1


def worker_target(text: str) -> tuple[str, str]:
    """An argparse type: NAME=HOST:PORT as (name, target); HOST:PORT alone is named by itself."""
    name, _, address = text.strip().rpartition("=")
    return name or address, target(address)


def _named_targets(text: str) -> list[tuple[str, str]]:
    """worker_target of each NAME=HOST:PORT in the comma separated text, but one without an
    address, which is skipped: a default from the environment is not refused as usage."""
    given = [part for part in text.split(",") if part.strip().rpartition("=")[2].strip()]
    return [worker_target(part) for part in given]


def _status_of(client: Client, name: str, target: str) -> tuple[str, Unreachable | None]:
    """The serving status of one target, or the failed call's code when it cannot answer, with
    why no server answered when none did."""
    stub = health_pb2_grpc.HealthStub(client.channel(target))
    try:
        response = client.call(stub.Check, health_pb2.HealthCheckRequest(service=""))
    except grpc.RpcError as error:
        if not isinstance(error, grpc.Call):
            return "UNKNOWN", None
        return error.code().name, client.unreachable(error, name, target)
    status: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return status, None
