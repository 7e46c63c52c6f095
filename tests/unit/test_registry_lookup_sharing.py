"""A question to the registry that concurrent refusals share (sanad/registry_lookup.py) is
every asker's: it runs under its own bounded time, not its first asker's deadline, and each
asker waits for it no longer than its own deadline."""

import asyncio
from typing import Any

import grpc
import pytest

from sanad.registry_lookup import LOOKUP_S, RegistryLookup, Unanswered
from sanad.v1 import registry_pb2

CALLER = "centre:desk-1@C1"


def deadline_exceeded() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata()
    )


class SlowRegistry:
    """The registry's two reads, answering after `delay_s` as a real channel does: a call whose
    timeout ends first fails DEADLINE_EXCEEDED then. Records each call's timeout and whether it
    was cancelled."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.timeouts: list[float | None] = []
        self.cancelled = 0

    async def _answer(self, timeout_s: float | None) -> None:
        self.timeouts.append(timeout_s)
        try:
            if timeout_s is not None and timeout_s < self.delay_s:
                await asyncio.sleep(timeout_s)
                raise deadline_exceeded()
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def GetCenter(self, request: Any, **call: Any) -> Any:
        await self._answer(call.get("timeout"))
        return registry_pb2.GetCenterResponse(center=registry_pb2.Center(id=request.id))

    async def GetCatalogService(self, request: Any, **call: Any) -> Any:
        await self._answer(call.get("timeout"))
        return registry_pb2.GetCatalogServiceResponse(
            service=registry_pb2.CatalogService(code=request.code)
        )


async def test_a_shared_question_is_not_cut_short_by_its_first_askers_deadline() -> None:
    # The first refusal's caller has 50 ms left, the second's a second: the registry answers
    # in 150 ms. Before, the question ran under the first caller's 50 ms and failed for both.
    registry = SlowRegistry(delay_s=0.15)
    lookup = RegistryLookup(registry)
    hurried = asyncio.create_task(lookup.center("C1", 0.05, CALLER))
    await asyncio.sleep(0)
    patient = await lookup.center("C1", 1.0, CALLER)
    assert getattr(patient, "id", None) == "C1"
    assert isinstance(await hurried, Unanswered)
    assert len(registry.timeouts) == 1


async def test_a_cancelled_first_asker_does_not_cancel_the_question_for_the_others() -> None:
    registry = SlowRegistry(delay_s=0.1)
    lookup = RegistryLookup(registry)
    # Both come before the question is sent, so both wait for its answer.
    first = asyncio.create_task(lookup.service("S", 1.0, CALLER))
    second = asyncio.create_task(lookup.service("S", 1.0, CALLER))
    await asyncio.sleep(0.02)
    first.cancel()
    answer = await second
    assert getattr(answer, "code", None) == "S"
    assert registry.cancelled == 0


async def test_the_shared_question_never_runs_longer_than_its_bound() -> None:
    registry = SlowRegistry(delay_s=0.0)
    lookup = RegistryLookup(registry)
    await lookup.current("C1", "S", None, CALLER)
    await lookup.current("C2", "S2", 30.0, CALLER)
    assert registry.timeouts
    assert all(timeout is not None and timeout <= LOOKUP_S for timeout in registry.timeouts)


async def test_a_question_nobody_waits_for_any_more_is_dropped_and_asked_afresh() -> None:
    # Every asker gave up: the registry is not kept busy for the rest of the bound, and the
    # next refusal asks a question of its own rather than joining one about to be dropped.
    registry = SlowRegistry(delay_s=0.2)
    lookup = RegistryLookup(registry)
    assert isinstance(await lookup.center("C1", 0.02, CALLER), Unanswered)
    await asyncio.sleep(0)
    assert registry.cancelled == 1
    registry.delay_s = 0.0
    answer = await lookup.center("C1", 1.0, CALLER)
    assert getattr(answer, "id", None) == "C1"
    assert len(registry.timeouts) == 2


async def test_an_asker_with_no_time_left_asks_nothing() -> None:
    registry = SlowRegistry(delay_s=0.0)
    lookup = RegistryLookup(registry)
    assert await lookup.current("C1", "S", 0.0, CALLER) is None
    assert registry.timeouts == []


class GatedRegistry:
    """GetCenter reads the centre as the registry has it when the call arrives, and answers
    when `gate` opens; a centre's offered services can change meanwhile."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.offered: list[str] = []
        self.calls = 0

    async def GetCenter(self, request: Any, **_: Any) -> Any:
        self.calls += 1
        center = registry_pb2.Center(id=request.id, offered_service_codes=list(self.offered))
        await self.gate.wait()
        return registry_pb2.GetCenterResponse(center=center)


async def test_a_refusal_after_a_change_never_takes_an_answer_read_before_it() -> None:
    # One refusal's question is on its way; the centre is offered the service (the registry
    # answers OK) and its client submits again. Before, the new refusal joined the question
    # already sent, read before the change, and was refused again for "does not offer".
    registry = GatedRegistry()
    lookup = RegistryLookup(registry)
    before = asyncio.create_task(lookup.center("C1", 1.0, CALLER))
    await asyncio.sleep(0.01)
    registry.offered = ["S"]  # the change, answered before the next submission
    after = asyncio.create_task(lookup.center("C1", 1.0, CALLER))
    also_after = asyncio.create_task(lookup.center("C1", 1.0, "centre:desk-2@C1"))
    await asyncio.sleep(0.01)
    registry.gate.set()
    assert getattr(await before, "offered", None) == frozenset()
    assert getattr(await after, "offered", None) == frozenset({"S"})
    assert getattr(await also_after, "offered", None) == frozenset({"S"})
    assert registry.calls == 2  # those that came while one was on its way share the next


async def test_a_question_waiting_its_turn_that_nobody_waits_for_leaves_the_one_before() -> None:
    registry = GatedRegistry()
    lookup = RegistryLookup(registry)
    first = asyncio.create_task(lookup.center("C1", 1.0, CALLER))
    await asyncio.sleep(0.01)
    assert isinstance(await lookup.center("C1", 0.02, CALLER), Unanswered)
    registry.gate.set()
    assert getattr(await first, "id", None) == "C1"
    assert registry.calls == 1


async def test_a_question_dropped_while_waiting_its_turn_leaves_the_next_to_wait_too() -> None:
    # One question is on its way; the one queued behind it loses its only asker. A refusal
    # after that asked at once, beside the one on its way: two at a time about one centre.
    registry = GatedRegistry()
    lookup = RegistryLookup(registry)
    first = asyncio.create_task(lookup.center("C1", 1.0, CALLER))
    await asyncio.sleep(0.01)
    assert isinstance(await lookup.center("C1", 0.02, CALLER), Unanswered)
    later = asyncio.create_task(lookup.center("C1", 1.0, "centre:desk-2@C1"))
    await asyncio.sleep(0.01)
    assert registry.calls == 1  # the later one waits for the one on its way
    registry.gate.set()
    assert getattr(await first, "id", None) == "C1"
    assert getattr(await later, "id", None) == "C1"
    assert registry.calls == 2


class RefusingRegistry:
    """A registry that does not let this process ask: its policy, or its rate limit."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    async def GetCenter(self, request: Any, **_: Any) -> Any:
        raise grpc.aio.AioRpcError(
            self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="not for this caller"
        )


async def test_a_registry_that_refuses_the_process_is_logged_as_a_misconfiguration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Counted as failed alone, a wrong identity or rate limit at the registry went unseen
    # while every refusal that rests on a lagging copy stood.
    for code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED):
        lookup = RegistryLookup(RefusingRegistry(code))
        assert isinstance(await lookup.center("C1", 1.0, CALLER), Unanswered)
    said = [r.getMessage() for r in caplog.records if "refused a lookup" in r.getMessage()]
    assert len(said) == 2
    assert said[0].startswith("the registry refused a lookup (PERMISSION_DENIED: not for this")
    assert "RESOURCE_EXHAUSTED" in said[1]
