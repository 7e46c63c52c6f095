"""sanad.v1.IntakeService over gRPC: translates protobuf to intake operations."""

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TypeAlias

import grpc

from sanad.deadline import ITEMS_MARGIN_S, caller_deadline
from sanad.domain.clock import utcnow
from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.domain.submissions import Channel, Submission
from sanad.domain.transactions import Status
from sanad.errors import Violation, check, collected
from sanad.records import proto_from_document
from sanad.rpc.enums import enum_suffix
from sanad.rpc.identity import caller
from sanad.rpc.replies import DEFAULT_MAX_MESSAGE_BYTES, fitted
from sanad.rpc.status import code_of, send_status
from sanad.rpc.timestamps import time_field, to_timestamp
from sanad.security.admission import item_charge
from sanad.security.identity import current
from sanad.v1 import common_pb2, intake_pb2, intake_pb2_grpc
from services.intake.listing import ListQuery, decode_token, encode_token, page_size
from services.intake.operations import Intake
from services.intake.reading import DeadlineReached, Reader
from services.intake.streaming import ItemResult, StreamLimits, Streams, submit_stream
from services.intake.tracking import Change, Tracker

Context: TypeAlias = grpc.aio.ServicerContext


def submission_from_proto(request: intake_pb2.SubmitTransactionRequest) -> Submission:
    name = enum_suffix(common_pb2.Channel, request.channel, "CHANNEL_")
    return Submission(
        request_id=request.request_id,
        center_id=request.center_id,
        service_code=request.service_code,
        channel=Channel(name) if name else None,
        fee_baisa=request.fee_baisa,
        civil_number=request.beneficiary_civil_number,
    )


def status_from_proto(value: int) -> Status | None:
    name = enum_suffix(common_pb2.TransactionStatus, value, "TRANSACTION_STATUS_")
    return Status(name) if name else None


def list_query_from_proto(request: intake_pb2.ListTransactionsRequest) -> ListQuery:
    """The query, or Invalid naming every bad field at once: an unknown status number (0 means
    any status; another number this version does not know must not widen the listing to all),
    a time outside protobuf's range, a negative page size, a page token not issued here. A time
    filter is unset when absent, not when zero: a set zero is the Unix epoch."""
    found: list[Violation] = []
    status = status_from_proto(request.status)
    if request.status and status is None:
        found.append(Violation("status", f"{request.status} is not a known TransactionStatus"))
    after = collected(found, lambda: time_field(request, "submitted_after"))
    before = collected(found, lambda: time_field(request, "submitted_before"))
    size = collected(found, lambda: page_size(request.page_size))
    filtered = ListQuery(
        center_id=request.center_id,
        status=status,
        submitted_after=after,
        submitted_before=before,
    )
    cursor = collected(found, lambda: decode_token(filtered, request.page_token))
    check(found)
    assert size is not None
    return replace(filtered, page_size=size, after=cursor)


def change_to_proto(change: Change) -> intake_pb2.StatusChange:
    return intake_pb2.StatusChange(
        status=f"TRANSACTION_STATUS_{change.status.value}",
        time=to_timestamp(change.time),
        actor=change.actor,
        note=change.note,
    )


def item_to_proto(result: ItemResult) -> intake_pb2.SubmitTransactionsResponse:
    # An overlong request id (refused for it) is not sent back: one near the message limit made
    # the answer too large to send, which ended the whole stream (the index names the item).
    echoed = result.request_id if len(result.request_id) <= MAX_CODE_LENGTH else ""
    answer = intake_pb2.SubmitTransactionsResponse(index=result.index, request_id=echoed)
    if result.accepted is not None:
        answer.transaction_id = result.accepted.transaction_id
    if result.error is not None:
        answer.error_code = code_of(result.error).name
        answer.error_message = result.error.message
        for violation in getattr(result.error, "violations", ()):
            answer.violations.add(field=violation.field, description=violation.description)
    return answer


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    """Each RPC: protobuf in, one intake operation, protobuf out."""

    def __init__(
        self,
        intake: Intake,
        reader: Reader,
        tracker: Tracker,
        limits: StreamLimits,
        watch_poll_s: float,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        streams: Streams | None = None,
    ) -> None:
        self.intake = intake
        self.reader = reader
        self.tracker = tracker
        self.limits = limits
        self.watch_poll_s = watch_poll_s
        # The server's limit (SANAD_GRPC_MAX_MESSAGE_BYTES): no listing reply passes it.
        self.max_message_bytes = max_message_bytes
        # The open SubmitTransactions streams, which the drain stops reading (Streams.stop).
        self.streams = streams if streams is not None else Streams()

    async def SubmitTransaction(
        self, request: intake_pb2.SubmitTransactionRequest, context: Context
    ) -> intake_pb2.SubmitTransactionResponse:
        accepted = await self.intake.submit(
            submission_from_proto(request), caller(context), current(), caller_deadline(context)
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
            deadline=caller_deadline(context, ITEMS_MARGIN_S),
            limits=self.limits,
            charge=item_charge(),
            streams=self.streams,
        )
        async for result in results:
            yield item_to_proto(result)

    async def GetTransaction(
        self, request: intake_pb2.GetTransactionRequest, context: Context
    ) -> intake_pb2.GetTransactionResponse:
        doc = await self.reader.get(request.id, current(), caller_deadline(context))
        return intake_pb2.GetTransactionResponse(transaction=proto_from_document(doc, utcnow()))

    async def ListTransactions(
        self, request: intake_pb2.ListTransactionsRequest, context: Context
    ) -> intake_pb2.ListTransactionsResponse:
        query = list_query_from_proto(request)
        docs, more = await self.reader.list(query, current(), caller_deadline(context))
        now = utcnow()
        by_id = {doc["_id"]: doc for doc in docs}
        # A page too large for one reply is cut, and continues after its last transaction sent.
        transactions, token = fitted(
            [proto_from_document(doc, now) for doc in docs],
            lambda shown: encode_token(query, by_id[shown.id]),
            encode_token(query, docs[-1]) if more else "",
            self.max_message_bytes,
        )
        return intake_pb2.ListTransactionsResponse(transactions=transactions, next_page_token=token)

    async def WatchTransaction(
        self, request: intake_pb2.WatchTransactionRequest, context: Context
    ) -> AsyncIterator[intake_pb2.WatchTransactionResponse]:
        docs = self.reader.watch(
            request.id, current(), caller_deadline(context), self.watch_poll_s, context.done
        )
        try:
            async for doc in docs:
                yield intake_pb2.WatchTransactionResponse(
                    transaction=proto_from_document(doc, utcnow())
                )
        except DeadlineReached:
            # A gRPC status of its own with no domain error: the caller's deadline is the
            # watch's normal end, a margin before gRPC would end it the same way.
            # When gRPC ended the call at its deadline first, this status cannot be sent: the
            # call ends as cancelled, which the interceptor counts as DEADLINE_EXCEEDED, not as
            # an INTERNAL error (6.5% of watches ending at their deadline, a chaos helper saw).
            await send_status(
                context,
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the watch reached its deadline"),
            )

    async def UpdateTransactionStatus(
        self, request: intake_pb2.UpdateTransactionStatusRequest, context: Context
    ) -> intake_pb2.UpdateTransactionStatusResponse:
        change = await self.tracker.update_status(
            request.id,
            status_from_proto(request.status),
            request.note,
            actor=caller(context),
            identity=current(),
            deadline=caller_deadline(context),
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
            caller_deadline(context),
            request_id=request.request_id,
        )
        return intake_pb2.CancelTransactionResponse(change=change_to_proto(change))

    async def RateTransaction(
        self, request: intake_pb2.RateTransactionRequest, context: Context
    ) -> intake_pb2.RateTransactionResponse:
        await self.tracker.rate(
            request.id, request.rating, caller(context), current(), caller_deadline(context)
        )
        return intake_pb2.RateTransactionResponse()
