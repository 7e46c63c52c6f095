"""Publishes BatchSubmissions to the batch exchange and waits for each BatchResult.

The items of a batch the worker rejected (e.g. its registry snapshot has not yet seen a new
centre) are sent again under a new batch id after a pause; the items it accepted are not sent
again, so none is stored twice. A batch refused as a whole is not sent again: under a new id
it would store again whatever its id had stored before (a batch id reused with other content
is refused so). The first batch is answered before any other is sent, and when it is refused
nothing else is sent (see SeedPlan.batches).
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sanad.amqp.batches import BatchClient, rejection
from sanad.amqp.connecting import CONNECT_TIMEOUT_S
from sanad.seed.plan import DEFAULT_BATCH_SIZE
from sanad.v1 import events_pb2

log = logging.getLogger("sanad.seed")


def ended(text: str) -> str:
    """text as a sentence: with a full stop, unless it ends in one or in a question mark."""
    return text if text.endswith((".", "?", "!")) else f"{text}."


@dataclass
class LoadResult:
    """What the batch worker answered, summed over every batch."""

    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    problems: list[str] = field(default_factory=list)


class BatchLoader:
    """Keeps up to `window` batches in flight; sends rejected items again under a new id."""

    def __init__(
        self,
        amqp_url: str,
        prefix: str,
        *,
        window: int = 4,
        attempts: int = 20,
        retry_pause_s: float = 1.0,
        reply_timeout_s: float = 300.0,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.window = window
        self.attempts = attempts
        self.retry_pause_s = retry_pause_s
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s

    async def load(self, batches: Iterable[events_pb2.BatchSubmission]) -> LoadResult:
        """Send every batch; what went wrong is in the result's problems, never raised, but
        for a broker that cannot be reached (TimeoutError when it does not answer in time)."""
        result = LoadResult()
        iterator = iter(batches)
        first = next(iterator, None)
        if first is None:
            return result
        async with BatchClient.connect(
            self.amqp_url, self.prefix, declare=True, timeout_s=self.connect_timeout_s
        ) as client:
            stop = asyncio.Event()
            if await self._one(client, first, result, stop):
                result.problems.append(
                    f"nothing else was sent. A batch id used before for other content means"
                    f" this dataset was loaded before with another --batch-size (default"
                    f" {DEFAULT_BATCH_SIZE}) or --scale (default 1.0), or by a release of the"
                    f" seed that made other data: seed again with those, or seed a fresh database"
                )
                return result
            limit = asyncio.Semaphore(self.window)

            async def one(batch: events_pb2.BatchSubmission) -> None:
                async with limit:
                    await self._one(client, batch, result, stop)

            await asyncio.gather(*(one(batch) for batch in iterator))
        return result

    async def _one(
        self,
        client: BatchClient,
        batch: events_pb2.BatchSubmission,
        result: LoadResult,
        stop: asyncio.Event,
    ) -> bool:
        """Submit the batch unless stopped; True when it was refused as a whole. No answer in
        time stops the load."""
        if stop.is_set():
            return False
        try:
            return await self._submit(client, batch, result)
        except TimeoutError as error:
            if not stop.is_set():  # batches in flight beside it time out too: said once
                stop.set()
                # An unconfirmed publish says so; an unanswered batch has no message.
                why = str(error) or (
                    f"no answer within {self.reply_timeout_s:g} s; is the batch worker running?"
                )
                result.problems.append(
                    f"{batch.batch_id}: {ended(why)} Seed again: batches answered are answered"
                    " the same"
                )
            return False

    async def _submit(
        self, client: BatchClient, batch: events_pb2.BatchSubmission, result: LoadResult
    ) -> bool:
        """Send the batch; then, while the worker rejects some of its items, send those again.
        True when the batch was refused as a whole.

        The batch worker derives each item's transaction id from the batch id and the item's
        index, so only the items it did not store go again, as a batch of their own. Raises
        TimeoutError when an answer does not come in time.
        """
        base = batch.batch_id
        for attempt in range(self.attempts):
            batch.batch_id = base if attempt == 0 else f"{base}-r{attempt}"
            # A broker under an alarm takes publishes and confirms none: bounded as well.
            answer = await client.publish(batch, timeout_s=self.reply_timeout_s)
            async with asyncio.timeout(self.reply_timeout_s):
                reply = await answer
            result.accepted += len(reply.accepted)
            if reply.refused_reason:
                result.batches += 1
                result.problems.append(f"{batch.batch_id}: refused: {reply.refused_reason}")
                return True
            if not reply.rejected:
                result.batches += 1
                return False
            # As batch submit says a row's reasons (the violations' protobuf text before).
            rejected = f"{len(reply.rejected)} rejected, first: {rejection(reply.rejected[0])}"
            batch = only(batch, [item.index for item in reply.rejected])
            log.info("batch %s: %s; retrying", batch.batch_id, rejected)
            result.retried += 1
            await asyncio.sleep(self.retry_pause_s)
        result.batches += 1
        result.rejected += len(reply.rejected)
        result.problems.append(f"{base}: {rejected}")
        return False


def only(batch: events_pb2.BatchSubmission, indexes: Sequence[int]) -> events_pb2.BatchSubmission:
    """A batch of the items at these indexes (live items first, then history items)."""
    live = len(batch.items)
    kept = events_pb2.BatchSubmission(batch_id=batch.batch_id, center_id=batch.center_id)
    for index in indexes:
        if index < live:
            kept.items.append(batch.items[index])
        else:
            kept.history_items.append(batch.history_items[index - live])
    return kept
