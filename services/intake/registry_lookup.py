"""The registry asked directly about a submission the snapshot refuses.

Intake judges submissions against its copy of the registry (snapshot.py), which the watch
streams bring up to date a few milliseconds after the registry answered a change. A client that
activated a centre, offered it a service or changed a fee and submitted at once was refused
against the copy before the change reached it (9 times in 10 in a helper's trial), with codes a
client does not retry (FAILED_PRECONDITION, NOT_FOUND, INVALID_ARGUMENT on the fee). So a
refusal that rests on the registry's state is judged again against the registry as it is now:
one call for the centre and one for the service.

Refused submissions are a caller's to send, as many as its rate allows, so the calls they cost
the registry are bounded here: one question at a time per centre and service, its answer kept
for ANSWER_TTL_S, and at most LOOKUPS_PER_S questions a second in all; beyond that the
snapshot's refusal stands (sanad_intake_registry_lookups_total counts each outcome).
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from sanad.errors import RateLimited
from sanad.security.limits import RateLimiter
from sanad.telemetry.metrics import INTAKE_REGISTRY_LOOKUPS
from sanad.v1 import registry_pb2 as pb
from services.intake.domain import CenterView, ServiceView
from services.intake.snapshot import center_view, service_view

# The longest a refused submission waits for the registry's answer (less when the caller's
# deadline is nearer).
LOOKUP_S = 2.0
# Questions to the registry a second, for the whole process, and how long an answer is kept:
# far above the lag cases (a client's change, then its submission), far below what the
# registry takes from one caller.
LOOKUPS_PER_S = 20
ANSWER_TTL_S = 1.0
MAX_ANSWERS = 1_000
# What the registry answers for a key it does not have (or will not take as a key).
UNKNOWN = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

Views = tuple[CenterView | None, ServiceView | None]
Key = tuple[str, str]


class RegistryLookup:
    """A centre and a catalogue service as the registry has them now."""

    def __init__(
        self,
        stub: Any,
        clock: Callable[[], float] = time.monotonic,
        rate_per_s: float = LOOKUPS_PER_S,
    ) -> None:
        self.stub = stub  # a registry_pb2_grpc.RegistryServiceStub
        self.clock = clock
        self.limiter = RateLimiter(rate_per_s, int(rate_per_s), clock)
        self._answers: OrderedDict[Key, tuple[float, Views]] = OrderedDict()
        self._asking: dict[Key, asyncio.Future[Views | None]] = {}

    async def current(
        self, center_id: str, service_code: str, timeout_s: float | None
    ) -> Views | None:
        """Both as the registry has them (None for one it does not know); None when the
        registry did not answer in time, or the process asks it too often just now."""
        key = (center_id, service_code)
        timeout = LOOKUP_S if timeout_s is None else min(timeout_s, LOOKUP_S)
        if (kept := self._answers.get(key)) is not None and kept[0] > self.clock():
            INTAKE_REGISTRY_LOOKUPS.labels("cached").inc()
            return kept[1]
        asking = self._asking.get(key)
        if asking is None:
            try:
                self.limiter.take("registry")
            except RateLimited:
                INTAKE_REGISTRY_LOOKUPS.labels("skipped").inc()
                return None
            asking = self._asking[key] = asyncio.ensure_future(self._ask(key, timeout))
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        else:
            INTAKE_REGISTRY_LOOKUPS.labels("joined").inc()
        try:
            async with asyncio.timeout(timeout):
                # Shielded: the question is every waiter's, not only its first caller's.
                return await asyncio.shield(asking)
        except TimeoutError:
            return None

    async def _ask(self, key: Key, timeout_s: float) -> Views | None:
        try:
            views = await asyncio.gather(
                self._center(key[0], timeout_s), self._service(key[1], timeout_s)
            )
        except grpc.aio.AioRpcError:
            INTAKE_REGISTRY_LOOKUPS.labels("failed").inc()
            return None
        INTAKE_REGISTRY_LOOKUPS.labels("asked").inc()
        answer: Views = (views[0], views[1])
        self._answers[key] = (self.clock() + ANSWER_TTL_S, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > MAX_ANSWERS:
            self._answers.popitem(last=False)
        return answer

    async def _center(self, center_id: str, timeout_s: float) -> CenterView | None:
        request = pb.GetCenterRequest(id=center_id)
        reply = await _known(self.stub.GetCenter, request, timeout_s)
        return None if reply is None else center_view(reply.center)

    async def _service(self, code: str, timeout_s: float) -> ServiceView | None:
        request = pb.GetCatalogServiceRequest(code=code)
        reply = await _known(self.stub.GetCatalogService, request, timeout_s)
        return None if reply is None else service_view(reply.service)


async def _known(call: Callable[..., Awaitable[Any]], request: Any, timeout_s: float) -> Any:
    """The registry's answer to request, or None when it does not know the key."""
    try:
        return await call(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        if error.code() in UNKNOWN:
            return None
        raise
