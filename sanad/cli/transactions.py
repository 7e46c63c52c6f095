"""Transaction commands against intake: submit, show and wait (tracking commands: tracking.py)."""

import argparse
import time
import uuid

import grpc

from sanad.cli.arguments import int64, not_empty, positive_seconds
from sanad.cli.client import Client
from sanad.cli.output import Printer, fee, label, when, yes_no
from sanad.v1 import common_pb2, intake_pb2

CHANNELS = ("counter", "mobile", "api", "batch")
STATUSES = tuple(
    label(value.name, "TRANSACTION_STATUS_")
    for value in common_pb2.TransactionStatus.DESCRIPTOR.values
    if value.number != common_pb2.TRANSACTION_STATUS_UNSPECIFIED
)
POLL_SECONDS = 0.2
# Failures after which intake may have stored the submission all the same: the answer was lost
# (a deadline, a broken connection) or the server failed while handling it.
OUTCOME_UNKNOWN = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the transaction commands."""
    submit = commands.add_parser("submit", help="submit one transaction")
    submit.add_argument("--center", required=True, help="centre id")
    submit.add_argument("--service", required=True, help="catalogue service code")
    submit.add_argument("--fee-baisa", type=int64, required=True)
    submit.add_argument("--civil-number", required=True, help="beneficiary's civil number")
    submit.add_argument("--channel", choices=CHANNELS, default="counter")
    submit.add_argument(
        "--request-id", type=not_empty, help="client request id; retries reuse it (default: new)"
    )
    submit.set_defaults(handler=submit_transaction)

    show = commands.add_parser("show", help="show a transaction with its history")
    show.add_argument("transaction_id")
    show.set_defaults(handler=show_transaction)

    wait = commands.add_parser("wait", help="wait until a transaction reaches a status")
    wait.add_argument("transaction_id")
    wait.add_argument("--status", choices=STATUSES, default="recorded")
    wait.add_argument("--within", type=positive_seconds, default=10.0, metavar="SECONDS")
    wait.set_defaults(handler=wait_for_status)


def status_value(name: str) -> str:
    """The enum value name of a status as typed on the command line."""
    return f"TRANSACTION_STATUS_{name.upper()}"


def submit_transaction(args: argparse.Namespace, client: Client, printer: Printer) -> int:
    """SubmitTransaction; prints the transaction id, and the request id it was sent with (the
    one a retry must reuse, which sanadctl made when --request-id did not give it); after a
    failure that may have stored it all the same, that request id with the error."""
    request = intake_pb2.SubmitTransactionRequest(
        request_id=args.request_id or uuid.uuid4().hex,
        center_id=args.center,
        service_code=args.service,
        channel=f"CHANNEL_{args.channel.upper()}",
        fee_baisa=args.fee_baisa,
        beneficiary_civil_number=args.civil_number,
    )
    try:
        response = client.call(client.intake().SubmitTransaction, request)
    except grpc.RpcError as error:
        # The answer that carries the id is what a lost answer lacks, and the error line names
        # the call's x-request-id, another id: a retry without this one stored it twice.
        code = error.code() if isinstance(error, grpc.Call) else None
        if code is None or code in OUTCOME_UNKNOWN:
            error.add_note(
                f"intake may have stored it: send it again with --request-id"
                f" {request.request_id}, which stores it once"
            )
        raise
    if printer.as_json:
        # The response does not carry the request id: without it here a script could not
        # retry with the id sanadctl made, as the table's request_id line lets people do.
        printer.json({**printer.as_dict(response), "request_id": request.request_id})
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
            last = status_name(response.transaction.status)
        if time.monotonic() + POLL_SECONDS > deadline:
            printer.error(
                f"{args.transaction_id} did not reach {args.status} within {args.within:g}s"
                f" (last: {last})"
            )
            return 1
        time.sleep(POLL_SECONDS)


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
            ("status", status_name(tx.status)),
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
        [when(change, "time"), status_name(change.status), change.actor, change.note]
        for change in tx.history
    ]
    printer.table("history", rows)


def status_name(value: int) -> str:
    """A transaction status for people."""
    return label(common_pb2.TransactionStatus.Name(value), "TRANSACTION_STATUS_")
