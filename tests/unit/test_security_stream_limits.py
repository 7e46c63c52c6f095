"""One identity holds at most SANAD_MAX_STREAMS_PER_IDENTITY streaming calls open at once."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from sanad.deadline import Deadline
from sanad.domain.submissions import Submission
from sanad.rpc.server import Registration, RunningServer, start_server
from sanad.security.admission import STREAM_CAP_LINES
from sanad.security.audit import AuditEvent
from sanad.security.identity import Identity
from sanad.settings import ServerSettings
from sanad.telemetry.metrics import GRPC_HANDLED
from sanad.v1 import intake_pb2, intake_pb2_grpc
from sanad.v1.intake_pb2_grpc import add_IntakeServiceServicer_to_server
from services.intake.app import SERVICE_NAME
from services.intake.operations import Accepted
from services.intake.servicer import IntakeServicer
from services.intake.streaming import StreamLimits
from tests.unit.security_echo import MemoryAudit

WATCH_CENTERS = "/sanad.v1.RegistryService/WatchCenters"  # server-streaming
SUBMIT_TRANSACTIONS = "/sanad.v1.IntakeService/SubmitTransactions"  # bidi, audited


@dataclass
class Held:
    """Streaming handlers that answer once, then stay open until told to finish."""

    finish: asyncio.Queue[Exception | None] = field(default_factory=asyncio.Queue)
    ended: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def stream(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        try:
            yield b""
            failure = await self.finish.get()  # one item ends one stream
            if failure is not None:
                raise failure
        finally:
            self.ended.put_nowait(None)

    def registrations(self) -> list[Registration]:
        found = []
        for name in (WATCH_CENTERS, SUBMIT_TRANSACTIONS):
            service, method = name.strip("/").split("/")
            if name == WATCH_CENTERS:
                handler = grpc.unary_stream_rpc_method_handler(self.stream)
            else:
                handler = grpc.stream_stream_rpc_method_handler(self.stream)
            generic = grpc.method_handlers_generic_handler(service, {method: handler})
            found.append(
                Registration(service, lambda s, h=generic: s.add_generic_rpc_handlers((h,)))
            )
        return found


async def start_held(
    held: Held, pki: Path, cap: int | None, audit: MemoryAudit | None = None
) -> RunningServer:
    limit = {} if cap is None else {"max_streams_per_identity": cap}
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        **limit,  # type: ignore[arg-type]
    )
    return await start_server(settings, 0, held.registrations(), checks={}, audit_log=audit)


def open_stream(channel: grpc.aio.Channel, name: str, pki: Path, who: str) -> Any:
    """A streaming call of `name` as the example identity `who` (its dev token)."""
    token = (pki / "tokens" / f"{who}.jwt").read_text().strip()
    metadata = (("authorization", f"Bearer {token}"),)
    if name == SUBMIT_TRANSACTIONS:
        return channel.stream_stream(name)(iter([b""]), metadata=metadata, timeout=10)
    return channel.unary_stream(name)(b"", metadata=metadata, timeout=10)


async def outcome(call: Any) -> str:
    """OK when the server answered the stream's first item, else the code and message that
    ended the call."""
    try:
        await call.read()
    except grpc.aio.AioRpcError as error:
        return f"{error.code().name}: {error.details()}"
    return "OK"


REFUSED = "RESOURCE_EXHAUSTED: at most 2 streaming calls per identity may be open at once"


@pytest.mark.parametrize("name", [WATCH_CENTERS, SUBMIT_TRANSACTIONS])
async def test_a_stream_beyond_the_cap_is_refused_while_another_identity_opens_one(
    pki: Path, name: str
) -> None:
    held, audit = Held(), MemoryAudit()
    running = await start_held(held, pki, cap=2, audit=audit)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            codes = [await outcome(open_stream(channel, name, pki, "centre")) for _ in range(3)]
            other = await outcome(open_stream(channel, name, pki, "ministry-rop"))
    finally:
        await running.stop(0)
    assert (codes, other) == (["OK", "OK", REFUSED], "OK")
    if name == SUBMIT_TRANSACTIONS:  # a state-changing RPC: its refusal is in the trail
        refused = [e for e in audit.events if e.outcome == "RESOURCE_EXHAUSTED"]
        assert [(e.subject, e.role) for e in refused] == [("example-centre-desk", "centre")]


async def test_refusals_at_the_cap_write_lines_within_a_budget(
    pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 300 refusals in under half a second wrote 300 lines (observability helper).
    held = Held()
    running = await start_held(held, pki, cap=1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            assert await outcome(open_stream(channel, WATCH_CENTERS, pki, "centre")) == "OK"
            with caplog.at_level(logging.WARNING, logger="sanad.security"):
                refusals = await asyncio.gather(
                    *(
                        outcome(open_stream(channel, WATCH_CENTERS, pki, "centre"))
                        for _ in range(30)
                    )
                )
    finally:
        await running.stop(0)
    assert all(code.startswith("RESOURCE_EXHAUSTED") for code in refusals)
    lines = [r for r in caplog.records if "open streaming calls, the cap" in r.getMessage()]
    assert 1 <= len(lines) <= STREAM_CAP_LINES.lines * 2  # within the budget, at most 2 windows


@pytest.mark.parametrize("name", [WATCH_CENTERS, SUBMIT_TRANSACTIONS])
@pytest.mark.parametrize("ending", ["normally", "with an error", "cancelled by the client"])
async def test_a_stream_that_ends_frees_its_slot(pki: Path, name: str, ending: str) -> None:
    held = Held()
    running = await start_held(held, pki, cap=2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            calls, codes = [], []
            for _ in range(3):  # one after another: the third is the one over the cap
                calls.append(open_stream(channel, name, pki, "centre"))
                codes.append(await outcome(calls[-1]))
            if ending == "cancelled by the client":
                calls[0].cancel()
            else:
                held.finish.put_nowait(RuntimeError("boom") if ending == "with an error" else None)
            await held.ended.get()  # a held stream's handler ended (the refused one never ran)
            again = await outcome(open_stream(channel, name, pki, "centre"))
    finally:
        await running.stop(0)
    assert (codes, again) == (["OK", "OK", REFUSED], "OK")


async def test_zero_lifts_the_default_cap_of_a_hundred_streams(pki: Path) -> None:
    codes = {}
    for cap in (None, 0):
        held = Held()
        running = await start_held(held, pki, cap)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                calls = [open_stream(channel, WATCH_CENTERS, pki, "centre") for _ in range(101)]
                codes[cap] = sorted([(await outcome(call))[:18] for call in calls])
        finally:
            await running.stop(0)
    # The 101 calls start together: whichever reaches the server last is the one refused.
    assert codes[None] == ["OK"] * 100 + ["RESOURCE_EXHAUSTED"]
    assert codes[0] == ["OK"] * 101


@dataclass
class Flooding:
    """A SubmitTransactions handler that answers without end: once the caller stops reading,
    flow control holds it where it sends an answer."""

    sending: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        async for _ in request:
            while True:
                self.sending.set()
                yield b"x" * 4096

    def registrations(self) -> list[Registration]:
        service, method = SUBMIT_TRANSACTIONS.strip("/").split("/")
        handler = grpc.stream_stream_rpc_method_handler(self.stream)
        generic = grpc.method_handlers_generic_handler(service, {method: handler})
        return [Registration(service, lambda s: s.add_generic_rpc_handlers((generic,)))]


async def until_recorded(
    audit: MemoryAudit, wanted: Callable[[AuditEvent], bool] = lambda event: True
) -> None:
    for _ in range(500):
        if any(wanted(event) for event in audit.events):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no such audit event")


@pytest.mark.parametrize("ending", ["CANCELLED", "DEADLINE_EXCEEDED"])
async def test_a_stream_cancelled_while_it_sends_is_audited_as_its_call_is_counted(
    ending: str,
) -> None:
    flooding, audit = Flooding(), MemoryAudit()
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"),
        0,
        flooding.registrations(),
        checks={},
        audit_log=audit,  # type: ignore[arg-type]
    )
    labels = ("bidi_stream", "sanad.v1.IntakeService", "SubmitTransactions", ending)
    before = GRPC_HANDLED.labels(*labels)._value.get()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = channel.stream_stream(SUBMIT_TRANSACTIONS)(
                iter([b""]),
                metadata=(("x-request-id", f"flood-{ending}"),),
                timeout=1.5 if ending == "DEADLINE_EXCEEDED" else 30,
            )
            await call.read()
            await asyncio.sleep(0.5)  # the caller reads no more: the handler waits to send
            if ending == "CANCELLED":
                call.cancel()
            await until_recorded(audit)
    finally:
        await running.stop(0)

    assert [(e.rpc, e.outcome, e.request_id) for e in audit.events] == [
        (SUBMIT_TRANSACTIONS, ending, f"flood-{ending}")
    ]
    assert GRPC_HANDLED.labels(*labels)._value.get() == before + 1


class HeldAfterHuge:
    """Accepts an item with a huge request id at once (its answer, as large, fills the flow
    control window); holds every other item until cancelled."""

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        if len(submission.request_id) > 128:
            return Accepted("T-huge", datetime(2024, 6, 1, tzinfo=UTC))
        await asyncio.Event().wait()
        raise AssertionError("held until cancelled")


def submission_of(request_id: str) -> intake_pb2.SubmitTransactionsRequest:
    return intake_pb2.SubmitTransactionsRequest(
        transaction=intake_pb2.SubmitTransactionRequest(request_id=request_id, center_id="C1")
    )


async def test_a_stream_closed_while_it_sends_counts_the_items_it_abandoned() -> None:
    audit = MemoryAudit()
    servicer = IntakeServicer(
        HeldAfterHuge(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        StreamLimits(max_inflight=8, max_items=100),
        watch_poll_s=1.0,
    )
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"),
        0,
        [Registration(SERVICE_NAME, partial(add_IntakeServiceServicer_to_server, servicer))],
        checks={},
        audit_log=audit,  # type: ignore[arg-type]
    )
    huge = [submission_of("h" * 3_000_000 + str(n)) for n in range(3)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            call = stub.SubmitTransactions(iter(huge + [submission_of(str(n)) for n in range(5)]))
            await asyncio.sleep(1.5)  # read nothing: the server waits to send a huge answer
            call.cancel()
            await until_recorded(audit, lambda e: not e.target)  # the stream's own event
    finally:
        await running.stop(0)

    (stream,) = [e for e in audit.events if not e.target]
    assert (stream.outcome, stream.item_outcomes) == ("CANCELLED", {"OK": 3, "CANCELLED": 5})
    items = sorted(e.outcome for e in audit.events if e.target)
    assert items == ["CANCELLED"] * 5 + ["OK"] * 3
