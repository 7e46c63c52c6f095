"""A state-changing call a stopping server refuses UNAVAILABLE is audited as any refusal: who
sent it, what, and that it was refused, so the trail shows the change its caller may retry."""

import asyncio

import grpc
import pytest

from sanad.rpc import server
from sanad.settings import ServerSettings
from tests.unit.security_echo import MemoryAudit, call, every_method, request_class, start_echo
from tests.unit.waiting import until

TRANSITION = next(m for m in every_method() if m.name == "TransitionLicence")
LIST_AGENCIES = next(m for m in every_method() if m.name == "ListAgencies")


async def test_a_change_refused_while_the_server_stops_is_audited_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough for the refused calls to arrive within it on a busy machine.
    monkeypatch.setattr(server, "REFUSING_S", 2.0)
    monkeypatch.setattr(server, "QUIET_S", 2.0)
    audit = MemoryAudit()
    running = await start_echo(ServerSettings(grpc_host="127.0.0.1"), audit)
    assert running.bookkeeping is not None
    request = bytes(request_class(TRANSITION)(center_id="c-7").SerializeToString())
    metadata = (("x-request-id", "stop-refused-1"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stopping = asyncio.create_task(running.stop(5.0))
        await until(lambda: running.bookkeeping.stopping)
        code = await call(channel, TRANSITION, request, metadata)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert await call(channel, LIST_AGENCIES, b"") == grpc.StatusCode.UNAVAILABLE
        await stopping
    [event] = audit.events  # the read is not audited
    assert event.rpc.endswith("/TransitionLicence")
    assert event.outcome == "UNAVAILABLE"
    assert event.subject == "dev-admin"
    assert event.target.get("center_id") == "c-7"
    assert event.request_id == "stop-refused-1"
