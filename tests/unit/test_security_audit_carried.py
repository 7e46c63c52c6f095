"""A handler may carry its call's OK audit event in its own durable write; then the interceptor
records nothing, unless the call fails after all."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sanad import errors
from sanad.rpc.server import Registration, start_server
from sanad.security import audit_items
from sanad.security.audit import AuditEvent
from sanad.security.audit_offer import give_back_offered, take_offered
from sanad.settings import ServerSettings
from sanad.v1 import intake_pb2
from tests.unit.security_echo import MemoryAudit
from tests.unit.waiting import until

SERVICE = "sanad.v1.IntakeService"
SUBMIT = f"/{SERVICE}/SubmitTransaction"
STREAM = f"/{SERVICE}/SubmitTransactions"


class Handlers:
    """SubmitTransaction does what its request id says; SubmitTransactions tries to take too."""

    def __init__(self) -> None:
        self.taken: list[AuditEvent | None] = []

    async def submit(self, request: intake_pb2.SubmitTransactionRequest, context: Any) -> bytes:
        if request.request_id.startswith("carry"):
            self.taken.append(take_offered(transaction_id="T-1", not_a_result="x"))
        if request.request_id == "carry-twice":
            self.taken.append(take_offered(transaction_id="T-2"))
        if request.request_id == "carry-then-fail":
            raise errors.Unavailable("the broker did not confirm")
        if request.request_id == "fail-late":
            await asyncio.sleep(0.95)  # past the margin kept back from a 1 s deadline
            raise errors.Unavailable("the database did not answer in time")
        if request.request_id == "carry-give-back":
            give_back_offered()  # the transaction meant to hold it aborted
            raise errors.AlreadyExists("refused inside the transaction")
        return b""

    async def stream(self, requests: Any, context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            if request.transaction.request_id == "item-fails":
                # Ends its own event, as intake's items do (services/intake/streaming.py).
                items = audit_items.current()
                assert items is not None
                await items.offer(request.transaction).end("UNAVAILABLE")
            else:
                self.taken.append(take_offered(transaction_id="T-3"))
            yield b""

    def registration(self) -> Registration:
        def same(data: bytes) -> bytes:
            return data

        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "SubmitTransaction": grpc.unary_unary_rpc_method_handler(
                    self.submit, intake_pb2.SubmitTransactionRequest.FromString, same
                ),
                "SubmitTransactions": grpc.stream_stream_rpc_method_handler(
                    self.stream, intake_pb2.SubmitTransactionsRequest.FromString, same
                ),
            },
        )
        return Registration(SERVICE, lambda s: s.add_generic_rpc_handlers((handler,)))


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, Handlers, MemoryAudit]]:
    handlers, audit = Handlers(), MemoryAudit()

    async def up() -> bool:
        return True

    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"),
        0,
        [handlers.registration()],
        checks={"up": up},
        audit_log=audit,  # type: ignore[arg-type]
        name="intake",
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield channel, handlers, audit
    await running.stop(0)


async def submit(
    channel: grpc.aio.Channel, request_id: str, deadline_s: float | None = None
) -> grpc.StatusCode:
    request = intake_pb2.SubmitTransactionRequest(
        request_id=request_id, center_id="C1", service_code="ROP-VISA"
    )
    call = channel.unary_unary(SUBMIT)
    try:
        await call(
            request.SerializeToString(),
            metadata=(("x-request-id", f"req-{request_id}"),),
            timeout=deadline_s,
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_taken_event_is_the_calls_ok_event_and_the_interceptor_records_none(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, handlers, audit = served
    assert await submit(channel, "carry") == grpc.StatusCode.OK
    (event,) = handlers.taken
    assert event is not None
    assert (event.rpc, event.outcome, event.subject, event.recorded_by) == (
        SUBMIT,
        "OK",
        "dev-admin",
        "intake",
    )
    assert event.request_id == "req-carry"
    # The policy's request targets and result fields; a name the policy does not list is dropped.
    assert event.target == {
        "request_id": "carry",
        "center_id": "C1",
        "service_code": "ROP-VISA",
        "transaction_id": "T-1",
    }
    assert audit.events == []


async def test_an_event_is_taken_once_per_call(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, handlers, audit = served
    assert await submit(channel, "carry-twice") == grpc.StatusCode.OK
    assert handlers.taken[0] is not None
    assert handlers.taken[1] is None
    assert audit.events == []


async def test_a_call_that_fails_after_taking_its_event_is_recorded_with_its_outcome(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, _, audit = served
    assert await submit(channel, "carry-then-fail") == grpc.StatusCode.UNAVAILABLE
    assert [(e.outcome, e.request_id) for e in audit.events] == [
        ("UNAVAILABLE", "req-carry-then-fail")
    ]
    # The carried OK event may still be stored with its transaction (a late confirm): the
    # failure names the same transaction, so the trail shows both belong to one call.
    assert audit.events[0].target["transaction_id"] == "T-1"


async def test_a_call_whose_handler_gave_its_event_back_is_recorded_as_if_never_taken(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, handlers, audit = served
    assert await submit(channel, "carry-give-back") == grpc.StatusCode.ALREADY_EXISTS
    assert handlers.taken[0] is not None
    # Nothing was stored: the failure names no result of the event given back.
    assert [(e.outcome, e.target) for e in audit.events] == [
        (
            "ALREADY_EXISTS",
            {"request_id": "carry-give-back", "center_id": "C1", "service_code": "ROP-VISA"},
        )
    ]


async def test_a_call_whose_handler_takes_nothing_is_recorded_by_the_interceptor(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, handlers, audit = served
    assert await submit(channel, "plain") == grpc.StatusCode.OK
    assert handlers.taken == []
    assert [(e.outcome, e.target.get("request_id")) for e in audit.events] == [("OK", "plain")]


async def test_a_streamed_call_offers_no_event(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, handlers, audit = served
    call = channel.stream_stream(STREAM)
    item = intake_pb2.SubmitTransactionsRequest().SerializeToString()
    answers = [answer async for answer in call(iter([item, item]))]
    assert len(answers) == 2
    assert handlers.taken == [None, None]
    assert [(e.rpc, e.outcome) for e in audit.events] == [(STREAM, "OK")]


async def test_a_failed_call_waits_for_its_event_at_most_what_is_left_of_its_deadline(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    # A hung MongoDB must not hold the answer past the caller's deadline (AuditLog.record).
    channel, _, audit = served
    assert await submit(channel, "carry-then-fail", deadline_s=5) == grpc.StatusCode.UNAVAILABLE
    assert await submit(channel, "carry-then-fail") == grpc.StatusCode.UNAVAILABLE

    bounded, unbounded = audit.waits
    assert bounded is not None
    assert 0 < bounded < 5
    assert unbounded is None  # a caller without a deadline waits for the event's write


async def test_a_streamed_item_waits_for_its_event_at_most_what_is_left_of_the_deadline(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    channel, _, audit = served
    call = channel.stream_stream(STREAM)
    item = intake_pb2.SubmitTransactionsRequest(
        transaction=intake_pb2.SubmitTransactionRequest(request_id="item-fails", center_id="C1")
    ).SerializeToString()
    assert len([answer async for answer in call(iter([item]), timeout=5)]) == 1
    assert len([answer async for answer in call(iter([item]))]) == 1

    # Each call: its item's event, then the call's own.
    assert [(e.rpc, e.outcome) for e in audit.events] == [
        (STREAM, "UNAVAILABLE"),
        (STREAM, "OK"),
        (STREAM, "UNAVAILABLE"),
        (STREAM, "OK"),
    ]
    item_bounded, _, item_unbounded, _ = audit.waits
    assert item_bounded is not None
    assert 0 < item_bounded < 5
    assert item_unbounded is None  # a call without a deadline waits for the event's write


async def test_a_call_failing_within_the_margin_waits_for_its_event_no_longer(
    served: tuple[grpc.aio.Channel, Handlers, MemoryAudit],
) -> None:
    # The deadline is read as the call begins. Read after the handler, it kept back a margin
    # of a tenth of what was left by then, and the answer waited for the event's write until
    # a hundredth of a second before the caller's deadline: a race the answer often lost.
    channel, _, audit = served
    await submit(channel, "fail-late", deadline_s=1.0)  # UNAVAILABLE, or lost to the deadline
    # Lost to the deadline, the caller's answer may come before the server's handler ends (a
    # busy machine: the suite failed so once); the event's write is awaited, not raced.
    await until(lambda: audit.waits)
    assert audit.waits == [0.0]
