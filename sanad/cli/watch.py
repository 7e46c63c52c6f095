"""Watch commands: follow the registry's change streams as they arrive."""

import argparse

import grpc

from sanad.cli.arguments import non_negative, positive
from sanad.cli.catalogue import service_status
from sanad.cli.client import Client
from sanad.cli.output import Printer
from sanad.v1 import registry_pb2


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the watch commands."""
    watch = commands.add_parser("watch", help="follow registry changes live")
    watch_commands = watch.add_subparsers(dest="action", required=True)
    catalogue = watch_commands.add_parser("catalogue", help="stream catalogue changes")
    catalogue.add_argument(
        "--since", type=non_negative, default=0, metavar="REVISION", help="replay after this"
    )
    catalogue.add_argument(
        "--count", type=positive, metavar="N", help="stop after N changes (else until Ctrl-C)"
    )
    catalogue.set_defaults(handler=watch_catalogue)


def watch_catalogue(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """WatchCatalog: one line per change, a line at the synced marker.

    Without --count the stream has no deadline and runs until Ctrl-C, which ends it with exit 0;
    with --count the global --timeout bounds the whole watch.
    """
    timeout = client.timeout if args.count is not None else None
    request = registry_pb2.WatchCatalogRequest(since_revision=args.since)
    stream = client.registry().WatchCatalog(request, timeout=timeout, metadata=client.metadata())
    changes = 0
    try:
        for response in stream:
            _print_event(printer, response)
            if response.WhichOneof("event") == "service":
                changes += 1
                if args.count is not None and changes >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    except grpc.RpcError as error:
        if not (isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.CANCELLED):
            raise
    finally:
        stream.cancel()
    return 0


def _print_event(printer: Printer, response: registry_pb2.WatchCatalogResponse) -> None:
    """A change or the synced marker, flushed at once so a pipe sees it live."""
    if printer.as_json:
        printer.message(response)
    elif response.WhichOneof("event") == "synced":
        printer.line(f"synced at revision {response.synced.revision}")
    else:
        service = response.service
        status = service_status(service.status)
        printer.line(
            f"{service.revision}  {service.code}  {service.version}  {status}  {service.name_en}"
        )
    printer.out.flush()
