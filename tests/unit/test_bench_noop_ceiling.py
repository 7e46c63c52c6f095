"""The no-op ceiling runs as a process of its own, started like intake, and answers at once."""

import os

import grpc

from bench.ceilings import NoopProcess
from sanad.v1 import intake_pb2, intake_pb2_grpc


async def test_the_noop_ceiling_process_serves_the_intake_contract_and_stops() -> None:
    noop = NoopProcess({**os.environ, "SANAD_LOG_LEVEL": "WARNING"})
    try:
        await noop.wait_serving()
        async with grpc.aio.insecure_channel(noop.target) as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            answer = await stub.SubmitTransaction(
                intake_pb2.SubmitTransactionRequest(request_id="r-1"), timeout=5
            )
    finally:
        noop.stop()
    assert answer.transaction_id == "r-1"
    assert noop.process.returncode == 0
