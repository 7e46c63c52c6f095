"""A centre desk (required auth, a token) that sends no center_id, or a 60,000-character one:
INVALID_ARGUMENT naming center_id, unary and streamed, and nothing echoes the id whole."""

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from sanad.rpc.status import field_violations
from sanad.v1 import intake_pb2, intake_pb2_grpc
from tests.integration.conftest import served_intake, submit_request

pytestmark = pytest.mark.integration

OVERLONG = "X" * 60_000  # within the 64 KiB intake takes (SMALL_REQUEST_BYTES)
REFUSALS = [
    ("", ("center_id", "is required")),
    (OVERLONG, ("center_id", "must be at most 128 characters")),
]


@pytest.fixture
async def desk(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str, pki: Path
) -> AsyncIterator[tuple[intake_pb2_grpc.IntakeServiceStub, tuple[tuple[str, str], ...]]]:
    """Intake requiring tokens, a stub to it, and the example centre desk's token metadata."""
    token = (pki / "tokens" / "centre.jwt").read_text().strip()
    served = served_intake(
        mongo_url,
        database_name,
        amqp_url,
        amqp_prefix,
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
    )
    async with served as up, grpc.aio.insecure_channel(f"127.0.0.1:{up.intake_port}") as channel:
        yield intake_pb2_grpc.IntakeServiceStub(channel), (("authorization", f"Bearer {token}"),)


async def test_a_centre_desks_missing_or_overlong_center_id_is_invalid(
    desk: tuple[intake_pb2_grpc.IntakeServiceStub, tuple[tuple[str, str], ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub, metadata = desk
    caplog.set_level(logging.WARNING, logger="sanad.rpc")
    for center_id, violation in REFUSALS:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitTransaction(
                submit_request(center_id, "S", "r-1"), metadata=metadata, timeout=10
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == [violation]
        assert len(refused.value.details() or "") < 300

    async def items() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
        for n, (center_id, _) in enumerate(REFUSALS):
            request = submit_request(center_id, "S", f"s-{n}")
            yield intake_pb2.SubmitTransactionsRequest(transaction=request)

    answers = [a async for a in stub.SubmitTransactions(items(), metadata=metadata, timeout=10)]
    for answer, (_, violation) in zip(answers, REFUSALS, strict=True):
        assert answer.error_code == "INVALID_ARGUMENT"
        assert [(v.field, v.description) for v in answer.violations] == [violation]
        assert len(answer.error_message) < 300
    logged = [r for r in caplog.records if r.name == "sanad.rpc"]
    assert logged
    assert all(len(str(getattr(r, "detail", ""))) < 300 for r in logged)
    assert OVERLONG not in caplog.text
