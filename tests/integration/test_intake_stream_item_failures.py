"""SubmitTransactions against the real broker and a database that refuses one item's read for
good: that item alone is answered INTERNAL, every other item is answered, and every item the
broker confirmed (queued to be stored) has its answer."""

from collections.abc import AsyncIterator

import grpc
import pytest

from sanad.v1 import intake_pb2, intake_pb2_grpc, registry_pb2_grpc
from tests.integration.conftest import (
    Stack,
    open_centre_with_service,
    served_intake,
    submit_request,
)
from tests.integration.failpoints import fail, own_view
from tests.integration.test_intake_submission import _queued_transaction_ids

pytestmark = pytest.mark.integration

ITEMS = 40
REFUSED = 10  # refused by its fee, so intake reads whether it was accepted before


async def test_an_item_whose_read_is_refused_for_good_is_answered_alone(
    failpoint_database: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> None:
    served = served_intake(failpoint_database, database_name, amqp_url, amqp_prefix)
    async with (
        served as up,
        grpc.aio.insecure_channel(f"127.0.0.1:{up.registry_port}") as registry_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{up.intake_port}") as intake_channel,
    ):
        stack = Stack(
            {},
            registry_pb2_grpc.RegistryServiceStub(registry_channel),
            intake_pb2_grpc.IntakeServiceStub(intake_channel),
            None,  # type: ignore[arg-type]
            amqp_url,
            amqp_prefix,
            up.intake,
        )
        center_id, service = await open_centre_with_service(stack)
        async with own_view(failpoint_database, database_name) as db:
            # Intake's reads of its request records are refused for good (as if its role lacked
            # `find`), slowly: the items after the refused one are claimed and confirmed
            # meanwhile.
            await fail(
                db, "sanad-intake", "find", "alwaysOn",
                errorCode=13, blockConnection=True, blockTimeMS=300,
            )  # fmt: skip

            async def items() -> AsyncIterator[intake_pb2.SubmitTransactionsRequest]:
                for n in range(ITEMS):
                    fee = 4999 if n == REFUSED else 5000
                    request = submit_request(center_id, service, f"f-{n}", fee_baisa=fee)
                    yield intake_pb2.SubmitTransactionsRequest(transaction=request)

            answers = [a async for a in stack.intake.SubmitTransactions(items(), timeout=30)]
        assert [a.index for a in answers] == list(range(ITEMS))
        refused = answers[REFUSED]
        assert (refused.error_code, refused.transaction_id) == ("INTERNAL", "")
        assert refused.error_message.startswith("internal error; quote request id ")
        assert all(a.error_code == "" for n, a in enumerate(answers) if n != REFUSED)
        answered = {a.transaction_id for a in answers if a.transaction_id}
        assert len(answered) == ITEMS - 1
        assert set(await _queued_transaction_ids(stack)) == answered
