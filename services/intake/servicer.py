"""sanad.v1.IntakeService over gRPC: translates protobuf to intake operations."""

from typing import TypeAlias

import grpc

from sanad.domain.clock import utcnow
from sanad.records import proto_from_document
from sanad.rpc.identity import caller
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, intake_pb2, intake_pb2_grpc
from services.intake.domain import Channel, Submission
from services.intake.operations import Intake

Context: TypeAlias = grpc.aio.ServicerContext


def submission_from_proto(request: intake_pb2.SubmitTransactionRequest) -> Submission:
    name = common_pb2.Channel.Name(request.channel).removeprefix("CHANNEL_")
    return Submission(
        request_id=request.request_id,
        center_id=request.center_id,
        service_code=request.service_code,
        channel=None if name == "UNSPECIFIED" else Channel(name),
        fee_baisa=request.fee_baisa,
        civil_number=request.beneficiary_civil_number,
    )


def _remaining(context: Context) -> float | None:
    """Seconds left of the caller's deadline, or None without one."""
    remaining = context.time_remaining()
    return float(remaining) if remaining is not None else None


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    """Each RPC: protobuf in, one intake operation, protobuf out."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def SubmitTransaction(
        self, request: intake_pb2.SubmitTransactionRequest, context: Context
    ) -> intake_pb2.SubmitTransactionResponse:
        accepted = await self.intake.submit(
            submission_from_proto(request), caller(context), _remaining(context)
        )
        return intake_pb2.SubmitTransactionResponse(
            transaction_id=accepted.transaction_id, submit_time=to_timestamp(accepted.submit_time)
        )

    async def GetTransaction(
        self, request: intake_pb2.GetTransactionRequest, context: Context
    ) -> intake_pb2.GetTransactionResponse:
        doc = await self.intake.get(request.id)
        return intake_pb2.GetTransactionResponse(transaction=proto_from_document(doc, utcnow()))
