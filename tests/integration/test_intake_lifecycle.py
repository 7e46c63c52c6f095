"""A transaction from submission to rating, end to end through intake, RabbitMQ and the worker."""

import asyncio
import signal
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from sanad.v1 import common_pb2, intake_pb2
from tests.integration.conftest import COUNTER, Stack, eventually, open_centre_with_service

pytestmark = pytest.mark.integration
S = common_pb2.TransactionStatus


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_the_sla_clock_excludes_the_time_spent_awaiting_documents(stack: Stack) -> None:
    center_id, service = await open_centre_with_service(stack)
    worker = stack.start_worker()
    try:
        submitted = await stack.intake.SubmitTransaction(
            intake_pb2.SubmitTransactionRequest(
                request_id="life-1",
                center_id=center_id,
                service_code=service,
                channel=COUNTER,
                fee_baisa=5000,
                beneficiary_civil_number="90817263",
            ),
            timeout=10,
        )
        tx = submitted.transaction_id

        async def get() -> intake_pb2.Transaction:
            reply = await stack.intake.GetTransaction(intake_pb2.GetTransactionRequest(id=tx))
            return reply.transaction

        async def reaches(status: int) -> None:
            async def probe() -> bool:
                try:
                    return (await get()).status == status
                except grpc.aio.AioRpcError:
                    return False

            await eventually(probe, within_s=20, every_s=0.05)

        async def update(status: int) -> None:
            await stack.intake.UpdateTransactionStatus(
                intake_pb2.UpdateTransactionStatusRequest(id=tx, status=status), timeout=10
            )
            await reaches(status)

        await reaches(S.TRANSACTION_STATUS_RECORDED)
        await update(S.TRANSACTION_STATUS_IN_PROGRESS)
        await update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS)
        await asyncio.sleep(2.2)
        await update(S.TRANSACTION_STATUS_IN_PROGRESS)
        await update(S.TRANSACTION_STATUS_COMPLETED)
        refused = stack.intake.UpdateTransactionStatus(
            intake_pb2.UpdateTransactionStatusRequest(id=tx, status=S.TRANSACTION_STATUS_REJECTED)
        )
        assert await code_of(refused) == grpc.StatusCode.FAILED_PRECONDITION
        await stack.intake.RateTransaction(intake_pb2.RateTransactionRequest(id=tx, rating=5))

        async def rated() -> bool:
            return (await get()).rating == 5

        await eventually(rated, within_s=20, every_s=0.05)
        shown = await get()
        total = shown.finish_time.seconds - shown.submit_time.seconds
        assert shown.paused_seconds >= 2
        assert shown.sla_elapsed_seconds <= total - shown.paused_seconds + 1
        assert [c.status for c in shown.history] == [
            S.TRANSACTION_STATUS_SUBMITTED,
            S.TRANSACTION_STATUS_RECORDED,
            S.TRANSACTION_STATUS_IN_PROGRESS,
            S.TRANSACTION_STATUS_AWAITING_DOCUMENTS,
            S.TRANSACTION_STATUS_IN_PROGRESS,
            S.TRANSACTION_STATUS_COMPLETED,
        ]
        assert shown.fee_refund_due is False
        again = stack.intake.RateTransaction(intake_pb2.RateTransactionRequest(id=tx, rating=4))
        assert await code_of(again) == grpc.StatusCode.ALREADY_EXISTS
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 30)
