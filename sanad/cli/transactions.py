"""Transaction commands against intake: submit, show, list, follow, wait, update, cancel, rate."""

import argparse
import time
import uuid
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, label, when, yes_no
from sanad.v1 import common_pb2, intake_pb2

CHANNELS = ("counter", "mobile", "api", "batch")
STATUSES = tuple(
    label(value.name, "TRANSACTION_STATUS_")
    for value in common_pb2.TransactionStatus.DESCRIPTOR.values
    if value.number != common_pb2.TRANSACTION_STATUS_UNSPECIFIED
)
REPORTABLE = ("in_progress", "awaiting_documents", "awaiting_agency", "completed", "rejected")
POLL_SECONDS = 0.2


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the transaction commands."""
    submit = commands.add_parser("submit", help="submit one transaction")
    submit.add_argument("--center", required=True, help="centre id")
    submit.add_argument("--service", required=True, help="catalogue service code")
    submit.add_argument("--fee-baisa", type=int, required=True)
    submit.add_argument("--civil-number", required=True, help="beneficiary's civil number")
    submit.add_argument("--channel", choices=CHANNELS, default="counter")
    submit.add_argument("--request-id", help="client request id; retries reuse it (default: new)")
    submit.set_defaults(handler=submit_transaction)

    show = commands.add_parser("show", help="show a transaction with its history")
    show.add_argument("transaction_id")
    show.set_defaults(handler=show_transaction)

    wait = commands.add_parser("wait", help="wait until a transaction reaches a status")
    wait.add_argument("transaction_id")
    wait.add_argument("--status", choices=STATUSES, default="recorded")
    wait.add_argument("--within", type=float, default=10.0, metavar="SECONDS")
    wait.set_defaults(handler=wait_for_status)
    _add_tracking_commands(commands)


def _add_tracking_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    listing = commands.add_parser("list", help="list a centre's transactions, newest first")
    listing.add_argument("--center", default="", help="centre id (a centre identity: its own)")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--after", type=_moment, help="submitted at or after (ISO 8601, UTC)")
    listing.add_argument("--before", type=_moment, help="submitted before (ISO 8601, UTC)")
    listing.add_argument("--page-size", type=int, default=50)
    listing.add_argument("--page-token", default="")
    listing.set_defaults(handler=list_transactions)

    follow = commands.add_parser(
        "follow", help="watch a transaction: print it now and after each change until it finishes"
    )
    follow.add_argument("transaction_id")
    follow.add_argument("--within", type=float, default=3600.0, metavar="SECONDS")
    follow.set_defaults(handler=follow_transaction)

    update = commands.add_parser("update-status", help="report progress or outcome (agency)")
    update.add_argument("transaction_id")
    update.add_argument("--status", choices=REPORTABLE, required=True)
    update.add_argument("--note", default="")
    update.set_defaults(handler=update_status)

    cancel = commands.add_parser("cancel", help="cancel a transaction that has not finished")
    cancel.add_argument("transaction_id")
    cancel.add_argument("--reason", default="")
    cancel.set_defaults(handler=cancel_transaction)

    rate = commands.add_parser("rate", help="record the beneficiary's rating (1-5), once")
    rate.add_argument("transaction_id")
    rate.add_argument("--rating", type=int, choices=range(1, 6), required=True)
    rate.set_defaults(handler=rate_transaction)


def _moment(text: str) -> Timestamp:
    """An ISO 8601 time (UTC when no offset is given) as a Timestamp."""
    moment = datetime.fromisoformat(text)
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def _status_value(name: str) -> str:
    """The enum value name of a status as typed on the command line."""
    return f"TRANSACTION_STATUS_{name.upper()}"


def submit_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """SubmitTransaction; prints the transaction id."""
    request = intake_pb2.SubmitTransactionRequest(
        request_id=args.request_id or uuid.uuid4().hex,
        center_id=args.center,
        service_code=args.service,
        channel=f"CHANNEL_{args.channel.upper()}",
        fee_baisa=args.fee_baisa,
        beneficiary_civil_number=args.civil_number,
    )
    response = client.call(client.intake().SubmitTransaction, request)
    if printer.as_json:
        printer.message(response)
    else:
        printer.fields(
            [
                ("transaction_id", response.transaction_id),
                ("request_id", request.request_id),
                ("submit_time", when(response, "submit_time")),
            ]
        )
    return 0


def show_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """GetTransaction."""
    request = intake_pb2.GetTransactionRequest(id=args.transaction_id)
    response = client.call(client.intake().GetTransaction, request)
    _print_transaction(printer, response)
    return 0


def wait_for_status(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """Poll GetTransaction until the status is reached; NOT_FOUND means not stored yet."""
    target = common_pb2.TransactionStatus.Value(f"TRANSACTION_STATUS_{args.status.upper()}")
    request = intake_pb2.GetTransactionRequest(id=args.transaction_id)
    deadline = time.monotonic() + args.within
    last = "not found"
    while True:
        remaining = deadline - time.monotonic()
        try:
            timeout = min(client.timeout, max(remaining, POLL_SECONDS))
            response = client.call(client.intake().GetTransaction, request, timeout=timeout)
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            if _reached(response.transaction, target):
                _print_transaction(printer, response)
                return 0
            last = _status(response.transaction.status)
        if time.monotonic() + POLL_SECONDS > deadline:
            printer.error(
                f"{args.transaction_id} did not reach {args.status} within {args.within:g}s"
                f" (last: {last})"
            )
            return 1
        time.sleep(POLL_SECONDS)


def list_transactions(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """ListTransactions: one page, and the token of the next."""
    request = intake_pb2.ListTransactionsRequest(
        center_id=args.center,
        status=_status_value(args.status) if args.status else None,
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
        [tx.id, when(tx, "submit_time"), _status(tx.status), tx.service_code, fee(tx.fee_baisa)]
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
    for message in call:
        tx = message.transaction
        if printer.as_json:
            printer.message(message)
            continue
        last = tx.history[-1] if tx.history else None
        note = f"  {last.note}" if last is not None and last.note else ""
        printer.line(
            f"{when(last or tx, 'time' if last else 'submit_time')}  {_status(tx.status)}{note}"
        )
    return 0


def update_status(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """UpdateTransactionStatus; prints the accepted change."""
    request = intake_pb2.UpdateTransactionStatusRequest(
        id=args.transaction_id, status=_status_value(args.status), note=args.note
    )
    response = client.call(client.intake().UpdateTransactionStatus, request)
    _print_change(printer, response)
    return 0


def cancel_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """CancelTransaction; prints the accepted change."""
    request = intake_pb2.CancelTransactionRequest(id=args.transaction_id, reason=args.reason)
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
            ("status", _status(change.status)),
            ("time", when(change, "time")),
            ("actor", change.actor),
            ("note", change.note),
        ]
    )


def _reached(transaction: intake_pb2.Transaction, target: int) -> bool:
    """Whether the transaction is at the status now or passed through it."""
    return transaction.status == target or any(c.status == target for c in transaction.history)


def _print_transaction(printer: Printer, response: intake_pb2.GetTransactionResponse) -> None:
    """A transaction, as JSON or for people."""
    if printer.as_json:
        printer.message(response)
        return
    tx = response.transaction
    channel = label(common_pb2.Channel.Name(tx.channel), "CHANNEL_")
    printer.fields(
        [
            ("transaction_id", tx.id),
            ("status", _status(tx.status)),
            ("center", tx.center_id),
            ("service", f"{tx.service_code} ({tx.agency_code}, v{tx.service_version})"),
            ("channel", channel),
            ("fee", fee(tx.fee_baisa)),
            ("beneficiary", tx.beneficiary_masked),
            ("submitted", when(tx, "submit_time")),
            ("finished", when(tx, "finish_time")),
            ("sla_seconds", tx.sla_elapsed_seconds),
            ("paused_seconds", tx.paused_seconds),
            ("refund_due", yes_no(tx.fee_refund_due)),
            ("rating", tx.rating or "-"),
        ]
    )
    rows = [
        [when(change, "time"), _status(change.status), change.actor, change.note]
        for change in tx.history
    ]
    printer.table("history", rows)


def _status(value: int) -> str:
    """A transaction status for people."""
    return label(common_pb2.TransactionStatus.Name(value), "TRANSACTION_STATUS_")
