"""sanadctl entry point: global options, subcommands, and one-line errors instead of tracebacks."""

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

import grpc

from sanad.cli import (
    batch,
    catalogue,
    dead_letters,
    demo,
    metrics_commands,
    operations,
    registry,
    tracking,
    transactions,
    watch,
)
from sanad.cli.arguments import metadata_text, positive_seconds, target
from sanad.cli.client import Client, CredentialError
from sanad.cli.output import Printer
from sanad.cli.reach import unreachable_line

DEFAULT_REGISTRY = "127.0.0.1:50051"
DEFAULT_INTAKE = "127.0.0.1:50052"
DEFAULT_METRICS = "127.0.0.1:50053"
DEFAULT_IDENTITY = "sanadctl"
DEFAULT_TIMEOUT = 10.0
# What the shell sees from a tool that SIGPIPE stopped: its reader went away (`| head -1`).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# Why standard output may refuse a write, besides a closed pipe (every file sanadctl itself
# writes names its own failures).
_UNWRITABLE = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG})


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The full command line; defaults come from the given environment."""
    parser = argparse.ArgumentParser(
        prog="sanadctl", description="Command-line client of the Sanad Mesh services."
    )
    parser.add_argument(
        "--registry",
        type=target,
        default=environ.get("SANAD_REGISTRY_TARGET", DEFAULT_REGISTRY),
        metavar="HOST:PORT",
        help="registry address (env SANAD_REGISTRY_TARGET)",
    )
    parser.add_argument(
        "--intake",
        type=target,
        default=environ.get("SANAD_INTAKE_TARGET", DEFAULT_INTAKE),
        metavar="HOST:PORT",
        help="intake address (env SANAD_INTAKE_TARGET)",
    )
    parser.add_argument(
        "--metrics",
        type=target,
        default=environ.get("SANAD_METRICS_TARGET", DEFAULT_METRICS),
        metavar="HOST:PORT",
        help="metrics address (env SANAD_METRICS_TARGET)",
    )
    parser.add_argument(
        "--identity",
        type=metadata_text,
        default=environ.get("SANAD_IDENTITY", DEFAULT_IDENTITY),
        help="caller identity sent as x-sanad-identity (env SANAD_IDENTITY)",
    )
    _add_credential_flags(parser, environ)
    parser.add_argument("--json", action="store_true", help="one JSON object per result")
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline of every call (default 10)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registry.add_commands(commands)
    catalogue.add_commands(commands)
    transactions.add_commands(commands)
    tracking.add_commands(commands)
    operations.add_commands(commands, environ)
    metrics_commands.add_commands(commands)
    demo.add_commands(commands)
    watch.add_commands(commands)
    batch.add_commands(commands)
    dead_letters.add_commands(commands)
    return parser


def _add_credential_flags(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """TLS files and a bearer token; without --ca the channels are plaintext (dev profile)."""
    flags = (
        ("--ca", "SANAD_CA_FILE", "CA certificate that verifies the services; turns on TLS"),
        ("--cert", "SANAD_CERT_FILE", "client certificate for mutual TLS; needs --key and --ca"),
        ("--key", "SANAD_KEY_FILE", "private key of the client certificate; needs --cert"),
        ("--token", "SANAD_TOKEN", "bearer token (JWT) sent as authorization metadata"),
    )
    for flag, variable, text in flags:
        parser.add_argument(
            flag,
            type=metadata_text if flag == "--token" else str,
            default=environ.get(variable, ""),
            help=f"{text} (env {variable})",
        )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, run one command, and return its exit code; quietly stop when stdout closes, and
    run nothing without a stdout at all."""
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): Python then has none, and print() writes nowhere,
        # so a command would run (a replay, a drop) and every line it prints would be lost.
        if sys.stderr is not None:
            Printer(as_json=False).error(
                "standard output is closed: sanadctl has nowhere to print its results"
            )
        return 1
    try:
        try:
            return run(argv, environ)
        finally:  # output still buffered meets a closed pipe here, not at interpreter exit
            sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit and would complain about the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:
        if error.errno not in _UNWRITABLE:
            raise
        # The output could not be written (a full disk, an I/O error): one line, no traceback,
        # and nothing more for Python to flush at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        Printer(as_json=False).error(f"cannot write the output: {error.strerror or error}")
        return 1


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; an option of sanadctl itself given after the command (`sanadctl
    health --json`) is a usage error that says to put it before, not only "unrecognized"."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        own = {flag for action in parser._actions for flag in action.option_strings}
        misplaced = [arg.partition("=")[0] for arg in unknown if arg.partition("=")[0] in own]
        if misplaced and misplaced[0] not in ("-h", "--help"):
            parser.error(
                f"{misplaced[0]} is an option of sanadctl itself: put it before the command"
                f" (sanadctl {misplaced[0]} ... {args.command} ...)"
            )
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, run one command, and return its exit code."""
    parser = build_parser(os.environ if environ is None else environ)
    argv = sys.argv[1:] if argv is None else argv
    if undecodable := [arg for arg in argv if not _utf8(arg)]:
        # A byte that is not UTF-8 reaches Python as a lone surrogate, which no request,
        # file name or message can carry.
        parser.error(f"argument {os.fsencode(undecodable[0])!r} is not valid UTF-8")
    args = _parse(parser, argv)
    printer = Printer(as_json=args.json)
    # The commands say what failed and what to do; aiormq would also log a failed connection
    # as the repr of its exception, which Python prints to stderr for want of a handler.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    client = Client(
        registry_target=args.registry,
        intake_target=args.intake,
        metrics_target=args.metrics,
        identity=args.identity,
        timeout=args.timeout,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
        token=args.token,
    )
    try:
        client.check_pairing()  # before any command opens a channel or builds credentials
        code: int = args.handler(args, client, printer)
    except grpc.RpcError as error:
        service, address = client.last_service
        found = client.unreachable(error, service, address) if service else None
        if found is not None and isinstance(error, grpc.Call):
            printer.error(unreachable_line(found, error, service, address))
        else:
            printer.rpc_error(error, client.last_request_id)
        for note in getattr(error, "__notes__", ()):  # what the command adds (submit: its id)
            printer.error(note)
        return 1
    except CredentialError as error:
        printer.error(str(error))
        return 2
    except KeyboardInterrupt as interrupt:
        # A command may say what was left undone (sanadctl batch submit: how to resend).
        printer.error("; ".join(["interrupted", *map(str, interrupt.args)]))
        return 130
    finally:
        client.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
