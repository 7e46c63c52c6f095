"""UpdateTransactionStatus and CancelTransaction under a client request id, against the real
MongoDB-wire server and RabbitMQ: a retry gets its first answer whatever happened since, another
change under the id is ALREADY_EXISTS, and concurrent retries are accepted and sent once.

Everything reaches RabbitMQ through a proxy that can cut intake off the broker; the stored
transactions are written directly, as the ingest worker writes them.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from sanad.v1 import events_pb2, intake_pb2
from tests.integration import test_intake_tracking
from tests.integration.broker_support import (  # noqa: F401 (fixtures, registered by importing)
    BrokerProxy,
    amqp_url_through_proxy,  # this module's amqp_url goes through the proxy
    proxy_fixture,
)
from tests.integration.conftest import Stack, eventually
from tests.integration.test_intake_tracking import T0, S, code_of, document, next_message
from tests.integration.test_intake_tracking_edges import refusal

pytestmark = pytest.mark.integration

transactions = test_intake_tracking.transactions  # its fixture, shared rather than copied

Update = Callable[..., Any]


def updates(stack: Stack, tx: str, caller: str = "rop-system") -> Update:
    """UpdateTransactionStatus of tx as `caller` (the dev identity header names the actor)."""

    def update(status: int, request_id: str, note: str = "", target: str = tx) -> Any:
        return stack.intake.UpdateTransactionStatus(
            intake_pb2.UpdateTransactionStatusRequest(
                id=target, status=status, note=note, request_id=request_id
            ),
            metadata=(("x-sanad-identity", caller),),
            timeout=10,
        )

    return update


async def ingest_depth(stack: Stack) -> int:
    """Messages waiting for the ingest worker (none runs here, so every publish is counted)."""
    return await stack.queue_depth(f"{stack.prefix}.ingest")


async def stored_open(transactions: Any, status: str = "IN_PROGRESS") -> str:
    doc = document("C1", T0, status)
    await transactions.insert_one(doc)
    return str(doc["_id"])


async def test_a_change_retried_under_its_request_id_gets_its_first_answer_whatever_followed(
    stack: Stack, transactions: Any
) -> None:
    tx = await stored_open(transactions, "RECORDED")
    update = updates(stack, tx)
    first = await update(S.TRANSACTION_STATUS_IN_PROGRESS, "rop-1", "started")
    assert await update(S.TRANSACTION_STATUS_IN_PROGRESS, "rop-1", "started") == first
    assert await ingest_depth(stack) == 1  # confirmed: the retry sends nothing
    # Later changes by other requests, one of them another caller's.
    await update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "rop-2", "passport copy")
    other = updates(stack, tx, caller="admin-console")
    await other(S.TRANSACTION_STATUS_IN_PROGRESS, "")
    await update(S.TRANSACTION_STATUS_COMPLETED, "rop-3", "issued")
    again = await update(S.TRANSACTION_STATUS_IN_PROGRESS, "rop-1", "started")
    assert again == first
    assert (again.change.status, again.change.note) == (S.TRANSACTION_STATUS_IN_PROGRESS, "started")
    assert again.change.actor == "rop-system"
    assert await ingest_depth(stack) == 4
    # Without a request id the same change is judged anew, as before.
    refused = update(S.TRANSACTION_STATUS_IN_PROGRESS, "", "started")
    assert await code_of(refused) == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_request_id_reused_for_another_change_is_already_exists(
    stack: Stack, transactions: Any
) -> None:
    tx, other_tx = await stored_open(transactions), await stored_open(transactions)
    update = updates(stack, tx)
    await update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "rop-1", "passport copy")
    reused = [
        update(S.TRANSACTION_STATUS_AWAITING_AGENCY, "rop-1", "passport copy"),
        update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "rop-1", "visa photo"),
        update(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "rop-1", "passport copy", other_tx),
        stack.intake.CancelTransaction(
            intake_pb2.CancelTransactionRequest(id=tx, reason="withdrawn", request_id="rop-1"),
            metadata=(("x-sanad-identity", "rop-system"),),
            timeout=10,
        ),
    ]
    for call in reused:
        assert await code_of(call) == grpc.StatusCode.ALREADY_EXISTS
    assert await ingest_depth(stack) == 1


async def test_the_same_request_id_from_another_caller_is_a_request_of_its_own(
    stack: Stack, transactions: Any
) -> None:
    tx = await stored_open(transactions)
    rop, admin = updates(stack, tx), updates(stack, tx, caller="admin-console")
    mine = await rop(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "shared-1", "passport copy")
    theirs = await admin(S.TRANSACTION_STATUS_IN_PROGRESS, "shared-1", "received")
    assert (theirs.change.actor, theirs.change.status) == (
        "admin-console",
        S.TRANSACTION_STATUS_IN_PROGRESS,
    )
    assert await rop(S.TRANSACTION_STATUS_AWAITING_DOCUMENTS, "shared-1", "passport copy") == mine
    assert await admin(S.TRANSACTION_STATUS_IN_PROGRESS, "shared-1", "received") == theirs
    assert await ingest_depth(stack) == 2


async def test_an_overlong_request_id_is_invalid_on_request_id(
    stack: Stack, transactions: Any
) -> None:
    tx = await stored_open(transactions)
    overlong = "r" * 129
    update = updates(stack, tx)(S.TRANSACTION_STATUS_COMPLETED, overlong)
    assert await refusal(update) == (grpc.StatusCode.INVALID_ARGUMENT, ["request_id"])
    cancel = stack.intake.CancelTransaction(
        intake_pb2.CancelTransactionRequest(id=tx, reason="withdrawn", request_id=overlong),
        timeout=10,
    )
    assert await refusal(cancel) == (grpc.StatusCode.INVALID_ARGUMENT, ["request_id"])
    assert await code_of(updates(stack, tx)(S.TRANSACTION_STATUS_COMPLETED, "r" * 128)) == (
        grpc.StatusCode.OK
    )


async def test_concurrent_calls_under_one_request_id_accept_and_send_one_change(
    stack: Stack, transactions: Any
) -> None:
    update = updates(stack, await stored_open(transactions))
    answers = await asyncio.gather(
        *(update(S.TRANSACTION_STATUS_COMPLETED, "rop-1", "issued") for _ in range(8))
    )
    assert all(answer == answers[0] for answer in answers)
    assert await ingest_depth(stack) == 1
    event = events_pb2.TransactionStatusChanged.FromString((await next_message(stack)).body)
    assert (event.sequence, event.note, event.time) == (1, "issued", answers[0].change.time)


async def test_a_cancel_retried_under_its_request_id_gets_its_first_answer(
    stack: Stack, transactions: Any
) -> None:
    tx = await stored_open(transactions)

    def cancel(reason: str) -> Any:
        return stack.intake.CancelTransaction(
            intake_pb2.CancelTransactionRequest(id=tx, reason=reason, request_id="centre-1"),
            timeout=10,
        )

    first = await cancel("beneficiary withdrew")
    assert first.change.status == S.TRANSACTION_STATUS_CANCELLED
    assert await cancel("beneficiary withdrew") == first  # not "CANCELLED to CANCELLED"
    assert await code_of(cancel("duplicate")) == grpc.StatusCode.ALREADY_EXISTS
    assert await ingest_depth(stack) == 1


async def test_a_change_whose_publish_failed_is_sent_by_its_retry_then_answered_as_first(
    stack: Stack, transactions: Any, proxy: BrokerProxy
) -> None:
    update = updates(stack, await stored_open(transactions))

    await proxy.cut()
    refused = update(S.TRANSACTION_STATUS_COMPLETED, "rop-1", "issued")
    assert await code_of(refused) == grpc.StatusCode.UNAVAILABLE
    await proxy.heal()

    async def healthy() -> bool:
        return stack.intake_app.publisher.is_healthy()

    await eventually(healthy, within_s=20)
    first = await update(S.TRANSACTION_STATUS_COMPLETED, "rop-1", "issued")  # sends it
    assert await update(S.TRANSACTION_STATUS_COMPLETED, "rop-1", "issued") == first  # confirmed
    assert await ingest_depth(stack) == 1
    event = events_pb2.TransactionStatusChanged.FromString((await next_message(stack)).body)
    assert (event.sequence, event.note, event.time) == (1, "issued", first.change.time)
