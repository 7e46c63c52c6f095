"""sanad.v1.IntakeService over gRPC: translates protobuf to intake operations."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TypeAlias

import grpc

from sanad.domain.clock import utcnow
from sanad.domain.transactions import Status
from sanad.errors import Invalid, Violation
from sanad.records import proto_from_document
from sanad.rpc.identity import caller
from sanad.rpc.status import code_of
from sanad.rpc.timestamps import from_timestamp, to_timestamp
from sanad.security.admission import item_charge
from sanad.security.identity import current
from sanad.v1 import common_pb2, intake_pb2, intake_pb2_grpc
from services.intake.deadline import Deadline
from services.intake.domain import Channel, Submission
from services.intake.listing import ListQuery, decode_token, page_size
from services.intake.operations import Intake
from services.intake.reading import DeadlineReached, Reader
from services.intake.streaming import ItemResult, StreamLimits, submit_stream
from services.intake.tracking import Change, Tracker

Context: TypeAlias = grpc.aio.ServicerContext


def _enum_suffix(enum: object, value: int, prefix: str) -> str:
    """'COUNTER' for CHANNEL_COUNTER; '' for unspecified or unknown numbers."""
    try:
        name: str = enum.Name(value)  # type: ignore[attr-defined]
    except ValueError:
        return ""
    suffix = name.removeprefix(prefix)
    return "" if suffix == "UNSPECIFIED" else suffix


def submission_from_proto(request: intake_pb2.SubmitTransactionRequest) -> Submission:
    name = _enum_suffix(common_pb2.Channel, request.channel, "CHANNEL_")
    return Submission(
        request_id=request.request_id,
        center_id=request.center_id,
        service_code=request.service_code,
        channel=Channel(name) if name else None,
        fee_baisa=request.fee_baisa,
        civil_number=request.beneficiary_civil_number,
    )


def status_from_proto(value: int) -> Status | None:
    name = _enum_suffix(common_pb2.TransactionStatus, value, "TRANSACTION_STATUS_")
    return Status(name) if name else None


def list_query_from_proto(request: intake_pb2.ListTransactionsRequest) -> ListQuery:
    """The query, or Invalid naming every bad field: an unknown status number (0 means any
    status; another number this version does not know must not widen the listing to all) and a
    time outside protobuf's range, each under its own field name."""
    found: list[Violation] = []
    status = status_from_proto(request.status)
    if request.status and status is None:
        found.append(Violation("status", f"{request.status} is not a known TransactionStatus"))
    bounds: dict[str, datetime | None] = {}
    for field in ("submitted_after", "submitted_before"):
        try:
            bounds[field] = from_timestamp(getattr(request, field), field)
        except Invalid as error:
            found.extend(error.violations)
    if found:
        raise Invalid(found)
    return ListQuery(
        center_id=request.center_id,
        status=status,
        submitted_after=bounds["submitted_after"],
        submitted_before=bounds["submitted_before"],
        page_size=page_size(request.page_size),
        after=decode_token(request.page_token) if request.page_token else None,
    )


def change_to_proto(change: Change) -> intake_pb2.StatusChange:
    return intake_pb2.StatusChange(
        status=f"TRANSACTION_STATUS_{change.status.value}",
        time=to_timestamp(change.time),
        actor=change.actor,
        note=change.note,
    )


def item_to_proto(result: ItemResult) -> intake_pb2.SubmitTransactionsResponse:
    answer = intake_pb2.SubmitTransactionsResponse(index=result.index, request_id=result.request_id)
    if result.accepted is not None:
        answer.transaction_id = result.accepted.transaction_id
    if result.error is not None:
        answer.error_code = code_of(result.error).name
        answer.error_message = result.error.message
        for violation in getattr(result.error, "violations", ()):
            answer.violations.add(field=violation.field, description=violation.description)
    return answer


def _deadline(context: Context) -> Deadline:
    """What is left of the caller's deadline, for every outbound call this RPC makes."""
    remaining = context.time_remaining()
    return Deadline(float(remaining) if remaining is not None else None)


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    """Each RPC: protobuf in, one intake operation, protobuf out."""

    def __init__(
        self,
        intake: Intake,
        reader: Reader,
        tracker: Tracker,
        limits: StreamLimits,
        watch_poll_s: float,
    ) -> None:
        self.intake = intake
        self.reader = reader
        self.tracker = tracker
        self.limits = limits
        self.watch_poll_s = watch_poll_s

    async def SubmitTransaction(
        self, request: intake_pb2.SubmitTransactionRequest, context: Context
    ) -> intake_pb2.SubmitTransactionResponse:
        accepted = await self.intake.submit(
            submission_from_proto(request), caller(context), current(), _deadline(context)
        )
        return intake_pb2.SubmitTransactionResponse(
            transaction_id=accepted.transaction_id, submit_time=to_timestamp(accepted.submit_time)
        )

    async def SubmitTransactions(
        self,
        request_iterator: AsyncIterator[intake_pb2.SubmitTransactionsRequest],
        context: Context,
    ) -> AsyncIterator[intake_pb2.SubmitTransactionsResponse]:
        async def items() -> AsyncIterator[Submission]:
            async for item in request_iterator:
                yield submission_from_proto(item.transaction)

        results = submit_stream(
            self.intake,
            items(),
            caller=caller(context),
            identity=current(),
            deadline=lambda: _deadline(context),
            limits=self.limits,
            charge=item_charge(),
        )
        async for result in results:
            yield item_to_proto(result)

    async def GetTransaction(
        self, request: intake_pb2.GetTransactionRequest, context: Context
    ) -> intake_pb2.GetTransactionResponse:
        doc = await self.reader.get(request.id, current(), _deadline(context))
        return intake_pb2.GetTransactionResponse(transaction=proto_from_document(doc, utcnow()))

    async def ListTransactions(
        self, request: intake_pb2.ListTransactionsRequest, context: Context
    ) -> intake_pb2.ListTransactionsResponse:
        query = list_query_from_proto(request)
        docs, token = await self.reader.list(query, current(), _deadline(context))
        now = utcnow()
        return intake_pb2.ListTransactionsResponse(
            transactions=[proto_from_document(doc, now) for doc in docs], next_page_token=token
        )

    async def WatchTransaction(
        self, request: intake_pb2.WatchTransactionRequest, context: Context
    ) -> AsyncIterator[intake_pb2.WatchTransactionResponse]:
        docs = self.reader.watch(request.id, current(), _deadline(context), self.watch_poll_s)
        try:
            async for doc in docs:
                yield intake_pb2.WatchTransactionResponse(
                    transaction=proto_from_document(doc, utcnow())
                )
        except DeadlineReached:
            # A gRPC status of its own with no domain error: the caller's deadline is the
            # watch's normal end, a margin before gRPC would end it the same way.
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the watch reached its deadline")

    async def UpdateTransactionStatus(
        self, request: intake_pb2.UpdateTransactionStatusRequest, context: Context
    ) -> intake_pb2.UpdateTransactionStatusResponse:
        change = await self.tracker.update_status(
            request.id,
            status_from_proto(request.status),
            request.note,
            actor=caller(context),
            identity=current(),
            deadline=_deadline(context),
            request_id=request.request_id,
        )
        return intake_pb2.UpdateTransactionStatusResponse(change=change_to_proto(change))

    async def CancelTransaction(
        self, request: intake_pb2.CancelTransactionRequest, context: Context
    ) -> intake_pb2.CancelTransactionResponse:
        change = await self.tracker.cancel(
            request.id,
            request.reason,
            caller(context),
            current(),
            _deadline(context),
            request_id=request.request_id,
        )
        return intake_pb2.CancelTransactionResponse(change=change_to_proto(change))

    async def RateTransaction(
        self, request: intake_pb2.RateTransactionRequest, context: Context
    ) -> intake_pb2.RateTransactionResponse:
        await self.tracker.rate(
            request.id, request.rating, caller(context), current(), _deadline(context)
        )
        return intake_pb2.RateTransactionResponse()
