"""Tracking commands against intake: list, follow, update-status, cancel and rate."""

import argparse
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.cli.arguments import int32, not_empty, positive_seconds
from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, when
from sanad.cli.transactions import STATUSES, status_name, status_value
from sanad.v1 import intake_pb2

REPORTABLE = ("in_progress", "awaiting_documents", "awaiting_agency", "completed", "rejected")


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register list, follow, update-status, cancel and rate."""
    listing = commands.add_parser("list", help="list a centre's transactions, newest first")
    listing.add_argument("--center", default="", help="centre id (a centre identity: its own)")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--after", type=_moment, help="submitted at or after (ISO 8601, UTC)")
    listing.add_argument("--before", type=_moment, help="submitted before (ISO 8601, UTC)")
    listing.add_argument("--page-size", type=int32, default=50)
    listing.add_argument("--page-token", default="")
    listing.set_defaults(handler=list_transactions)

    follow = commands.add_parser(
        "follow", help="watch a transaction: print it now and after each change until it finishes"
    )
    follow.add_argument("transaction_id")
    follow.add_argument("--within", type=positive_seconds, default=3600.0, metavar="SECONDS")
    follow.set_defaults(handler=follow_transaction)

    update = commands.add_parser("update-status", help="report progress or outcome (agency)")
    update.add_argument("transaction_id")
    update.add_argument("--status", choices=REPORTABLE, required=True)
    update.add_argument("--note", default="")
    update.add_argument(
        "--request-id",
        type=not_empty,
        help="client request id; run again with the same id, it answers as the first run did",
    )
    update.set_defaults(handler=update_status)

    cancel = commands.add_parser("cancel", help="cancel a transaction that has not finished")
    cancel.add_argument("transaction_id")
    cancel.add_argument("--reason", default="")
    cancel.add_argument(
        "--request-id",
        type=not_empty,
        help="client request id; run again with the same id, it answers as the first run did",
    )
    cancel.set_defaults(handler=cancel_transaction)

    rate = commands.add_parser("rate", help="record the beneficiary's rating (1-5), once")
    rate.add_argument("transaction_id")
    rate.add_argument("--rating", type=int, choices=range(1, 6), required=True)
    rate.set_defaults(handler=rate_transaction)


def _moment(text: str) -> Timestamp:
    """An ISO 8601 time (UTC when no offset is given) as a Timestamp; a usage error for text
    that is not a time, or a time that UTC puts before year 1 or after year 9999."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:  # argparse turns only ValueError and TypeError into usage errors
        raise argparse.ArgumentTypeError(
            f"{text!r} in UTC is before year 1 or after year 9999"
        ) from None
    stamp = Timestamp()
    stamp.FromDatetime(utc)
    return stamp


def list_transactions(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """ListTransactions: one page, and the token of the next."""
    request = intake_pb2.ListTransactionsRequest(
        center_id=args.center,
        status=status_value(args.status) if args.status else None,
        page_size=args.page_size,
        page_token=args.page_token,
    )
    if args.after:
        request.submitted_after.CopyFrom(args.after)
    if args.before:
        request.submitted_before.CopyFrom(args.before)
    response = client.call(client.intake().ListTransactions, request)
    if printer.as_json:
        printer.message(response)
        return 0
    rows = [
        [tx.id, when(tx, "submit_time"), status_name(tx.status), tx.service_code, fee(tx.fee_baisa)]
        for tx in response.transactions
    ]
    printer.table("transactions", rows)
    if response.next_page_token:
        printer.line(f"next page: --page-token {response.next_page_token}")
    return 0


def follow_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """WatchTransaction: one status line per change (JSON: one object per change)."""
    request = intake_pb2.WatchTransactionRequest(id=args.transaction_id)
    call = client.intake().WatchTransaction(
        request, timeout=args.within, metadata=client.metadata()
    )
    last_status = ""
    try:
        for message in call:
            tx = message.transaction
            last_status = status_name(tx.status)
            if printer.as_json:
                printer.message(message)
                continue
            last = tx.history[-1] if tx.history else None
            note = f"  {last.note}" if last is not None and last.note else ""
            printer.line(
                f"{when(last or tx, 'time' if last else 'submit_time')}  {last_status}{note}"
            )
    except grpc.RpcError as error:
        if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        # As `wait` says it, not gRPC's "Stream removed (Deadline Exceeded)".
        printer.error(
            f"{args.transaction_id} did not finish within {args.within:g}s"
            + (f" (last: {last_status})" if last_status else "")
        )
        return 1
    return 0


def update_status(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """UpdateTransactionStatus; prints the accepted change."""
    request = intake_pb2.UpdateTransactionStatusRequest(
        id=args.transaction_id,
        status=status_value(args.status),
        note=args.note,
        request_id=args.request_id or "",
    )
    response = client.call(client.intake().UpdateTransactionStatus, request)
    _print_change(printer, response)
    return 0


def cancel_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """CancelTransaction; prints the accepted change."""
    request = intake_pb2.CancelTransactionRequest(
        id=args.transaction_id, reason=args.reason, request_id=args.request_id or ""
    )
    response = client.call(client.intake().CancelTransaction, request)
    _print_change(printer, response)
    return 0


def rate_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """RateTransaction."""
    request = intake_pb2.RateTransactionRequest(id=args.transaction_id, rating=args.rating)
    response = client.call(client.intake().RateTransaction, request)
    if printer.as_json:
        printer.message(response)
    else:
        printer.fields([("transaction_id", args.transaction_id), ("rating", args.rating)])
    return 0


def _print_change(printer: Printer, response: object) -> None:
    """The change a status update or cancellation queued."""
    if printer.as_json:
        printer.message(response)  # type: ignore[arg-type]
        return
    change = response.change  # type: ignore[attr-defined]
    printer.fields(
        [
            ("status", status_name(change.status)),
            ("time", when(change, "time")),
            ("actor", change.actor),
            ("note", change.note),
        ]
    )
