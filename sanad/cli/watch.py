"""Watch commands: follow the registry's change streams as they arrive."""

import argparse
import time
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

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


# When the registry ends the stream (a restart or deploy drains it) or cannot be reached, the
# watch opens it again after the last revision shown: at first after RESUME_FIRST_S, then twice
# as long each time, up to RESUME_MAX_S.
RESUME_FIRST_S = 0.5
RESUME_MAX_S = 5.0


@dataclass
class _Followed:
    """Where a watch is: the last revision shown and the update time of its change (which a
    resume names, so a registry restored since refuses it: OUT_OF_RANGE, exit 1), the changes
    counted, the events shown."""

    after: int
    at: Timestamp | None = None
    changes: int = 0
    shown: int = 0


def watch_catalogue(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """WatchCatalog: one line per change, a line at the synced marker.

    Without --count the watch has no deadline and runs until Ctrl-C, which ends it with exit
    0; with --count the global --timeout bounds the whole watch. A stream the registry ends or
    loses is opened again after the last revision shown, with one warning line per outage
    (it stopped at the first registry restart, with exit 0 and nothing said).
    """
    ends = time.monotonic() + client.timeout if args.count is not None else None
    followed = _Followed(after=args.since)
    pause, warned = RESUME_FIRST_S, False
    try:
        while True:
            left = None if ends is None else max(ends - time.monotonic(), 0.001)
            shown = followed.shown
            why = _follow(args, client, printer, followed, left)
            if why is None:
                return 0
            if followed.shown != shown:  # the stream had come back: a new outage
                pause, warned = RESUME_FIRST_S, False
            if not warned:
                printer.warning(f"{why}; watching again after revision {followed.after}")
                warned = True
            time.sleep(pause)
            pause = min(2 * pause, RESUME_MAX_S)
    except KeyboardInterrupt:
        return 0


def _follow(
    args: argparse.Namespace,
    client: Client,
    printer: Printer,
    followed: _Followed,
    timeout: float | None,
) -> str | None:
    """Show one stream's events from followed.after; None once --count changes are shown (or
    the stream was cancelled), else why the stream ended."""
    request = registry_pb2.WatchCatalogRequest(
        since_revision=followed.after, since_update_time=followed.at
    )
    stream = client.registry().WatchCatalog(request, timeout=timeout, metadata=client.metadata())
    try:
        for response in stream:
            _print_event(printer, response)
            followed.shown += 1
            if response.WhichOneof("event") == "synced":
                followed.after = response.synced.revision
                continue
            service = response.service
            followed.after = service.revision
            followed.at = service.update_time if service.HasField("update_time") else None
            followed.changes += 1
            if args.count is not None and followed.changes >= args.count:
                return None
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        if code == grpc.StatusCode.CANCELLED:
            return None
        if code != grpc.StatusCode.UNAVAILABLE:
            raise
        return "the registry cannot be reached"
    finally:
        stream.cancel()
    return "the registry ended the stream (a restart or deploy)"


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
