"""The registry asked directly about a submission its copy refuses.

Intake and the batch worker judge submissions against their copy of the registry
(sanad.registry_snapshot), which the watch streams bring up to date a few milliseconds after
the registry answered a change (up to a quarter of a second when the change went through
another registry replica). A client
that activated a centre, offered it a service or changed a fee and submitted at once was refused
against the copy before the change reached it (9 times in 10 in a helper's trial), with codes a
client does not retry (FAILED_PRECONDITION, NOT_FOUND, INVALID_ARGUMENT on the fee); a batch's
items were answered refused. So a refusal that rests on the registry's state is judged again
against the registry as it is now: the centre and the service, each one call.

Refused submissions are a caller's to send, as many as its rate allows, so the calls they cost
the registry are bounded here: one question at a time per centre and per service (refusals that
come before it is sent share it; those that come while it is on its way share the next, sent
when it returns, as its answer may have been read before a change their clients made), at most
LOOKUPS_PER_CALLER_S questions a second for one caller (the identity whose refusal asks it: a
quarter of the process's budget, so one noisy caller, even three, leave the rest to everyone
else) and at most LOOKUPS_PER_S in all; beyond that the copy's refusal stands. A refusal that
joins a question already asked costs no one's budget.
A shared question is every asker's: it runs under its own time (LOOKUP_S), not its first
asker's deadline, each asker waits for it no longer than its own deadline, and it is dropped
only when no asker waits any more (so a first asker whose deadline was short, or whose call
was cancelled, fails no one else's). No answer is kept: a change a client makes right after
one (refused for a service not offered, it offers the service and submits again) must be judged
against the registry after that change, not against the answer before it, whether that answer
agreed with the copy or not. sanad_registry_lookups_total counts each question's outcome.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc

from sanad.domain.submissions import CenterView, ServiceView
from sanad.errors import RateLimited
from sanad.registry_snapshot import center_view, service_view
from sanad.security.limits import RateLimiter
from sanad.telemetry.logs import LineBudget
from sanad.telemetry.metrics import REGISTRY_LOOKUPS
from sanad.v1 import registry_pb2 as pb

# The longest a refused submission waits for the registry's answer (less when the caller's
# deadline is nearer), and the longest a shared question runs.
LOOKUP_S = 2.0
# Questions to the registry a second (a centre or a service each), for the whole process: far
# above the lag cases (a client's change, then its submission), far below what the registry
# takes from one caller.
LOOKUPS_PER_S = 40
# Questions one caller's refusals may ask a second (bursts as many): a quarter of the process's,
# plenty for the lag cases of one caller, and one noisy caller cannot leave the others none.
LOOKUPS_PER_CALLER_S = 10
# What the registry answers for a key it does not have (or will not take as a key).
UNKNOWN = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
# What the registry answers a caller it does not let ask: logged, a few lines a second at most.
REFUSALS = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
REFUSAL_LINES = LineBudget(lines=5, per_s=1.0)
log = logging.getLogger("sanad.intake")

Views = tuple[CenterView | None, ServiceView | None]
T = TypeVar("T", CenterView, ServiceView)


class Unanswered:
    """The registry gave no answer in time, or the process asks it too often just now."""


UNANSWERED = Unanswered()


@dataclass
class _Question:
    """One question to the registry, whether it was sent (or still waits for the one before it
    to return, `before`), and how many askers wait for its answer."""

    before: "_Question | None" = None
    answer: "asyncio.Future[Any]" = field(init=False)
    sent: bool = False
    waiting: int = 0


class RegistryLookup:
    """Centres and catalogue services as the registry has them now."""

    def __init__(
        self,
        stub: Any,
        clock: Callable[[], float] = time.monotonic,
        rate_per_s: float = LOOKUPS_PER_S,
        caller_rate_per_s: float = LOOKUPS_PER_CALLER_S,
    ) -> None:
        self.stub = stub  # a registry_pb2_grpc.RegistryServiceStub
        self.clock = clock
        self.limiter = RateLimiter(rate_per_s, int(rate_per_s), clock)
        # By caller: its share of the process's questions.
        self.callers = RateLimiter(caller_rate_per_s, int(caller_rate_per_s), clock)
        # By ("center", id) or ("service", code): the question being asked.
        self._asking: dict[tuple[str, str], _Question] = {}

    async def current(
        self, center_id: str, service_code: str, timeout_s: float | None, caller: str
    ) -> Views | None:
        """Both as the registry has them (None for one it does not know); None when the
        registry did not answer in time, or the process, or caller, asks it too often just
        now."""
        timeout = LOOKUP_S if timeout_s is None else min(timeout_s, LOOKUP_S)
        center, service = await asyncio.gather(
            self.center(center_id, timeout, caller), self.service(service_code, timeout, caller)
        )
        if isinstance(center, Unanswered) or isinstance(service, Unanswered):
            return None
        return center, service

    async def center(
        self, center_id: str, timeout_s: float, caller: str
    ) -> CenterView | Unanswered | None:
        """The centre as the registry has it (None: it does not know it), for caller's
        refusal."""
        return await self._view(("center", center_id), timeout_s, self._center, caller)

    async def service(
        self, code: str, timeout_s: float, caller: str
    ) -> ServiceView | Unanswered | None:
        """The catalogue service as the registry has it (None: it does not know it), for
        caller's refusal."""
        return await self._view(("service", code), timeout_s, self._service, caller)

    async def _view(
        self,
        key: tuple[str, str],
        timeout_s: float,
        fetch: Callable[[str, float], Awaitable[T | None]],
        caller: str,
    ) -> T | Unanswered | None:
        if timeout_s <= 0:
            return UNANSWERED  # its caller could not wait for any answer
        question = self._asking.get(key)
        if question is not None and not question.sent:
            REGISTRY_LOOKUPS.labels("joined").inc()
        else:
            # None asked, or one sent already: its answer may have been read before a change
            # this refusal's client made, so the next question, sent when that one returns.
            try:
                self.callers.take(caller)  # first: a caller over its share spends no one's
                self.limiter.take("registry")
            except RateLimited:
                REGISTRY_LOOKUPS.labels("skipped").inc()
                return UNANSWERED
            question = self._asked_after(key, fetch, question)
        return cast(T | Unanswered | None, await self._wait(key, question, timeout_s))

    def _asked_after(
        self,
        key: tuple[str, str],
        fetch: Callable[[str, float], Awaitable[T | None]],
        before: "_Question | None",
    ) -> "_Question":
        """A question about key, sent once the one before it (if any) returned: one at a time."""
        question = self._asking[key] = _Question(before)
        question.answer = asyncio.ensure_future(self._ask(key, fetch, question, before))
        question.answer.add_done_callback(lambda _: self._forget(key, question))
        return question

    async def _wait(self, key: tuple[str, str], question: "_Question", timeout_s: float) -> object:
        """The question's answer, waited for at most timeout_s; when its last asker stops
        waiting (its deadline, or its call cancelled) the question is dropped, so it runs as
        long as its most patient asker waits, within LOOKUP_S."""
        question.waiting += 1
        try:
            async with asyncio.timeout(timeout_s):
                # Shielded: the question is every waiter's, not only this one's.
                return await asyncio.shield(question.answer)
        except TimeoutError:
            return UNANSWERED
        finally:
            question.waiting -= 1
            if not question.waiting and not question.answer.done():
                question.answer.cancel()
                self._forget(key, question)  # the next refusal asks afresh

    def _forget(self, key: tuple[str, str], question: "_Question") -> None:
        """The question is no longer the one to ask or join about key; one dropped while it
        waited for its turn gives it back to the one before it, still on its way (forgotten
        too, the next refusal asked beside it: two at a time)."""
        if self._asking.get(key) is not question:
            return
        before = question.before
        question.before = None  # no chain of the questions dropped
        if before is not None and not before.answer.done():
            self._asking[key] = before
        else:
            del self._asking[key]

    async def _ask(
        self,
        key: tuple[str, str],
        fetch: Callable[[str, float], Awaitable[T | None]],
        question: "_Question",
        before: "_Question | None",
    ) -> T | Unanswered | None:
        try:
            if before is not None:
                await asyncio.wait([before.answer])  # its turn (wait: never cancels that one)
            question.sent = True
            # Its own time, not its first asker's: whoever joins it may wait longer.
            view = await fetch(key[1], LOOKUP_S)
        except asyncio.CancelledError:
            REGISTRY_LOOKUPS.labels("failed").inc()  # every asker gave up waiting
            raise
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, ValueError) as error:
            # Not answered in a form this build can use (a status number a newer registry
            # added, a channel closed at shutdown): the copy's refusal stands.
            REGISTRY_LOOKUPS.labels("failed").inc()
            if not isinstance(error, grpc.aio.AioRpcError):
                log.warning("the registry's answer about %s could not be used: %r", key, error)
            elif error.code() in REFUSALS and (
                fields := REFUSAL_LINES.fields(error.code(), {"code": error.code().name})
            ):
                # Not an outage: this process's identity or share at the registry is wrong
                # (counted as failed alone, it went unseen while every lag case was refused).
                log.warning(
                    "the registry refused a lookup (%s: %s); the local copy's refusal stands:"
                    " check this process's client identity and the registry's policy and rate"
                    " limits",
                    error.code().name,
                    error.details(),
                    extra=fields,
                )
            return UNANSWERED
        REGISTRY_LOOKUPS.labels("asked").inc()
        return view

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
