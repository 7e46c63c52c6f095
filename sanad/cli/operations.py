"""Operator commands: the health of every service (statistics live in metrics_commands)."""

import argparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.cli.client import Client
from sanad.cli.output import Printer

SERVING = "SERVING"


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the health command."""
    health = commands.add_parser("health", help="gRPC health of the services")
    health.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="check this target instead of registry, intake and metrics (repeatable)",
    )
    health.set_defaults(handler=check_health)


def check_health(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """grpc.health.v1 Check on each target; fails unless every one is SERVING."""
    if args.target:
        targets = [(target, target) for target in args.target]
    else:
        targets = [
            ("registry", client.registry_target),
            ("intake", client.intake_target),
            ("metrics", client.metrics_target),
        ]
    rows = [[name, target, _status_of(client, target)] for name, target in targets]
    if printer.as_json:
        for name, target, status in rows:
            printer.json({"name": name, "target": target, "status": status})
    else:
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, target, status in rows:
            printer.line(f"{name:<{width[0]}}  {target:<{width[1]}}  {status}")
    return 0 if all(row[2] == SERVING for row in rows) else 1


def _status_of(client: Client, target: str) -> str:
    """The serving status of one target, or the failed call's code when it cannot answer."""
    stub = health_pb2_grpc.HealthStub(client.channel(target))
    try:
        response = client.call(stub.Check, health_pb2.HealthCheckRequest(service=""))
    except grpc.RpcError as error:
        return error.code().name if isinstance(error, grpc.Call) else "UNKNOWN"
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return name
