"""SubmitTransactions: many submissions over one stream, answered in order, confirms pipelined.

Each item is submitted in its own task so broker confirms overlap; the items submitted but
not yet answered are capped in number and in the bytes they hold (_InFlight), so a slow
broker, or a caller that does not read its answers, slows the reading of the stream (flow
control reaches the client) instead of growing memory. Answers leave strictly in item order.
Each item is charged to the caller's rate limit as it is read
(sanad.security.admission.item_charge); an item over the rate is answered RESOURCE_EXHAUSTED
and not submitted. Each submitted item has an audit event of its own
(sanad.security.audit_items): a fresh one's travels in its message, as a unary submission's.
An item that fails in a way no domain rule raised is answered alone, INTERNAL (UNAVAILABLE when
the failure may pass; services.intake.failures), and the stream goes on: the items before it may
be confirmed by the broker already, and they are stored whether answered or not. When the call
ends with items unanswered (the caller went away, or the call failed), they are cancelled, and
each ends its event CANCELLED before the stream's own event counts them. As intake's drain
begins (Streams.stop), every open stream stops reading: the items it took are answered, then it
ends UNAVAILABLE, so a stream whose caller keeps it open neither takes items until the grace
cuts it (answering none of those in flight) nor holds the stop for the whole grace.
"""

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from sanad.deadline import Deadline
from sanad.domain.submissions import Submission
from sanad.errors import DomainError, RateLimited, Unavailable
from sanad.rpc.status import code_of
from sanad.security import audit_items
from sanad.security.identity import Identity
from services.intake.failures import item_failure
from services.intake.operations import Accepted, Intake

CANCELLED = grpc.StatusCode.CANCELLED.name
STOPPING = (
    "intake is stopping: the items after the last one answered were not taken; send them again"
)


@dataclass(frozen=True)
class ItemResult:
    """The answer to one item: accepted, or the domain error that refused it (an Internal
    for a failure no domain rule raised)."""

    index: int
    request_id: str
    accepted: Accepted | None = None
    error: DomainError | None = None


@dataclass(frozen=True)
class StreamLimits:
    """Items in flight (submitted, unanswered), the bytes they may hold, and items per stream.

    256 valid items hold about 60 KB (ids of 128 Arabic letters, 270 KB). Requests are at
    most 64 KiB (services.intake.app); within that, ten streams of 60 KB items whose answers
    were not read peaked intake at 195 MB without the byte cap and 129 MB with it.
    """

    max_inflight: int
    max_items: int
    max_inflight_bytes: int = 512 * 1024


def held_bytes(submission: Submission) -> int:
    """What an item in flight holds: its text fields as Python keeps them."""
    return sum(
        sys.getsizeof(text)
        for text in (
            submission.request_id,
            submission.center_id,
            submission.service_code,
            submission.civil_number,
        )
    )


class _InFlight:
    """Room for the items one stream has in flight: at most `items` of them, holding at most
    `size` bytes together; an item larger than that alone goes when nothing else is held. Only
    the stream's reader waits for room, and answers free it in order."""

    def __init__(self, items: int, size: int) -> None:
        self.items, self.size = items, size
        self.held_items = self.held_bytes = 0
        self.freed = asyncio.Event()

    async def take(self, size: int) -> None:
        while self.held_items and (
            self.held_items >= self.items or self.held_bytes + size > self.size
        ):
            self.freed.clear()
            await self.freed.wait()
        self.held_items += 1
        self.held_bytes += size

    def give(self, size: int) -> None:
        self.held_items -= 1
        self.held_bytes -= size
        self.freed.set()


class _Stream:
    """The reading half of one stream: starts a task per item, hands tasks over in order."""

    def __init__(
        self,
        intake: Intake,
        caller: str,
        identity: Identity,
        *,
        deadline: Deadline,
        limits: StreamLimits,
        charge: Callable[[], None],
    ) -> None:
        self.intake, self.caller, self.identity = intake, caller, identity
        self.deadline, self.limits, self.charge = deadline, limits, charge
        # The call's item audit, read in the handler's context (None: items are not audited).
        self.audit = audit_items.current()
        self.room = _InFlight(limits.max_inflight, limits.max_inflight_bytes)
        # Each item's task and the room it holds, in item order; None after the last.
        self.tasks: asyncio.Queue[tuple[asyncio.Task[ItemResult], int] | None] = asyncio.Queue()
        self.too_long = False
        self.started = 0  # items handed to a task of their own (one cancelled early never runs)
        self.begun = 0  # items whose task ran (each ends its own event and count)
        self.reader: asyncio.Task[None] | None = None
        self.stopped = False  # reading ended by the drain (stop)
        self.closing: asyncio.Future[None] | None = None
        if self.audit is not None:
            # gRPC may close a call's handlers in any order (at their yields, when the caller
            # goes while an answer is sent): the call's event ends this stream's items first.
            self.audit.settled_by(self.close)

    def start(self, items: AsyncIterator[Submission]) -> asyncio.Task[None]:
        """Read the items in a task of their own: that task. However it ends (cancelled even
        before it ran), the tasks handed over end with None."""
        self.reader = asyncio.create_task(self.read(items))
        self.reader.add_done_callback(lambda _: self.tasks.put_nowait(None))
        return self.reader

    def stop(self) -> None:
        """Read no further item (the drain began): the items taken are still answered."""
        if self.reader is not None and self.reader.cancel():
            self.stopped = True

    async def read(self, items: AsyncIterator[Submission]) -> None:
        index = 0
        async for submission in items:
            if index >= self.limits.max_items:
                self.too_long = True
                return
            size = held_bytes(submission)
            await self.room.take(size)
            refusal = self._over_rate()
            task = asyncio.create_task(self._one(index, submission, refusal))
            self.tasks.put_nowait((task, size))
            index += 1
            self.started = index

    def _over_rate(self) -> RateLimited | None:
        """Charge one item to the caller's rate: None when within it."""
        try:
            self.charge()
        except RateLimited as error:
            return error
        return None

    async def _one(
        self, index: int, submission: Submission, refusal: RateLimited | None
    ) -> ItemResult:
        self.begun += 1
        if refusal is not None:
            if self.audit is not None:
                self.audit.ended(code_of(refusal).name)
            return ItemResult(index, submission.request_id, error=refusal)
        # Offered in this item's own task: only this item's submission can take it.
        event = self.audit.offer(submission) if self.audit is not None else None
        try:
            accepted = await self.intake.submit(
                submission, self.caller, self.identity, self.deadline
            )
        except DomainError as error:
            failure: DomainError = error
        except Exception as error:  # this item's answer alone: the stream and the others go on
            failure = item_failure(error, index, submission.request_id)
        except asyncio.CancelledError:  # abandoned: the call ended before this item's answer
            if event is not None:
                await event.end(CANCELLED)
            raise
        else:
            if event is not None:
                await event.end(audit_items.OK, {"transaction_id": accepted.transaction_id})
            return ItemResult(index, submission.request_id, accepted=accepted)
        if event is not None:
            await event.end(code_of(failure).name)
        return ItemResult(index, submission.request_id, error=failure)

    async def close(self) -> None:
        """Stop reading, and abandon what was started and not answered. Run when the handler
        ends and by the call's event (sanad.security.audit_items), maybe at once: the first
        cancels at once, before an item not yet run can start; both then await one settling,
        which a caller cancelled meanwhile leaves running."""
        if self.closing is None:
            self.closing = asyncio.ensure_future(self._settled(self._cancelled()))
        await asyncio.shield(self.closing)

    def _cancelled(self) -> list[asyncio.Task[Any]]:
        """Cancel the reading and every item started and not answered (the call ended: the
        caller went away, or it failed): the tasks to wait for."""
        left: list[asyncio.Task[Any]] = []
        if self.reader is not None and self.reader.cancel():
            left.append(self.reader)
        while not self.tasks.empty():
            entry = self.tasks.get_nowait()
            if entry is not None and entry[0].cancel():
                left.append(entry[0])
        return left

    async def _settled(self, left: list[asyncio.Task[Any]]) -> None:
        """Once each cancelled task has ended (an item its event), count the items whose task
        never ran: with no event of their own, as an item refused for the rate (they submitted
        nothing)."""
        await asyncio.gather(*left, return_exceptions=True)
        if self.audit is not None:
            for _ in range(self.started - self.begun):
                self.audit.ended(CANCELLED)


class Streams:
    """The streams open in this process, so that the drain can stop them reading."""

    def __init__(self) -> None:
        self.stopping = False
        self._open: set[_Stream] = set()

    def stop(self) -> None:
        """Every open stream, and any opened from now on, reads no further item."""
        self.stopping = True
        for stream in self._open:
            stream.stop()

    def opened(self, stream: _Stream) -> None:
        self._open.add(stream)
        if self.stopping:
            stream.stop()

    def closed(self, stream: _Stream) -> None:
        self._open.discard(stream)


async def submit_stream(
    intake: Intake,
    items: AsyncIterator[Submission],
    *,
    caller: str,
    identity: Identity,
    deadline: Deadline,
    limits: StreamLimits,
    charge: Callable[[], None],
    streams: Streams | None = None,
) -> AsyncIterator[ItemResult]:
    """Answer every item in order; RESOURCE_EXHAUSTED once the stream exceeds max_items, and
    UNAVAILABLE after the items taken once `streams` is stopped (the drain began).

    `deadline` is the call's, read as it began: every item's calls share what is left of it.

    charge() is called per item read and raises RateLimited for an item over the caller's rate.
    """
    stream = _Stream(intake, caller, identity, deadline=deadline, limits=limits, charge=charge)
    reader = stream.start(items)
    if streams is not None:
        streams.opened(stream)
    try:
        while (entry := await stream.tasks.get()) is not None:
            task, size = entry
            result = await task
            stream.room.give(size)
            yield result
        if stream.stopped:
            raise Unavailable(STOPPING)
        await reader  # a broken request stream fails the call
    finally:
        if streams is not None:
            streams.closed(stream)
        await stream.close()
    if stream.too_long:
        raise RateLimited(
            f"a stream carries at most {limits.max_items} items; open a new one", retry_after_s=0
        )
