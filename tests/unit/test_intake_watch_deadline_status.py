"""A watch that reaches its caller's deadline ends DEADLINE_EXCEEDED; when gRPC ended the call at
that deadline first and the status cannot be sent, it ends as cancelled (the interceptor counts
that as DEADLINE_EXCEEDED), never as an INTERNAL error with a traceback, which 6.5% of such
watches were in a chaos helper's run, feeding SanadHighErrorRatio."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from sanad.security.identity import DEV_ADMIN, set_current
from sanad.v1 import intake_pb2
from services.intake.reading import DeadlineReached
from services.intake.servicer import IntakeServicer


class ReachingItsDeadline:
    async def watch(self, *_: Any) -> AsyncIterator[dict[str, Any]]:
        raise DeadlineReached()
        yield {}  # an async generator


class EndedCall:
    """A call gRPC has ended already (its deadline passed): its status can no longer be sent."""

    def __init__(self, ended: bool) -> None:
        self.ended = ended

    def time_remaining(self) -> float | None:
        return None

    def done(self) -> bool:
        return self.ended

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError("ExecuteBatchError: the call is over")


async def watch(ended: bool) -> None:
    servicer = IntakeServicer(None, ReachingItsDeadline(), None, None, 0.01)  # type: ignore[arg-type]
    set_current(DEV_ADMIN)
    request = intake_pb2.WatchTransactionRequest(id="T1")
    async for _ in servicer.WatchTransaction(request, EndedCall(ended)):  # type: ignore[arg-type]
        pass


async def test_a_watch_whose_call_gRPC_ended_at_its_deadline_ends_cancelled_not_failed() -> None:
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(watch(ended=True))


async def test_a_status_that_cannot_be_sent_on_a_live_call_is_still_an_error() -> None:
    with pytest.raises(RuntimeError, match="ExecuteBatchError"):
        await asyncio.create_task(watch(ended=False))
