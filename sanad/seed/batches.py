"""Publishes BatchSubmissions to the batch exchange and waits for each BatchResult.

A batch the worker refused, or the items of it the worker rejected (e.g. its registry snapshot
has not yet seen a new centre), are sent again under a new batch id after a pause; the items it
accepted are not sent again, so none is stored twice.
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sanad.amqp.batches import BatchClient
from sanad.v1 import events_pb2

log = logging.getLogger("sanad.seed")


@dataclass
class LoadResult:
    """What the batch worker answered, summed over every batch."""

    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    problems: list[str] = field(default_factory=list)


class BatchLoader:
    """Keeps up to `window` batches in flight; sends a refused batch again under a new id."""

    def __init__(
        self,
        amqp_url: str,
        prefix: str,
        *,
        window: int = 4,
        attempts: int = 20,
        retry_pause_s: float = 1.0,
        reply_timeout_s: float = 300.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.window = window
        self.attempts = attempts
        self.retry_pause_s = retry_pause_s
        self.reply_timeout_s = reply_timeout_s

    async def load(self, batches: Iterable[events_pb2.BatchSubmission]) -> LoadResult:
        result = LoadResult()
        async with BatchClient.connect(self.amqp_url, self.prefix, declare=True) as client:
            limit = asyncio.Semaphore(self.window)

            async def one(batch: events_pb2.BatchSubmission) -> None:
                async with limit:
                    await self._submit(client, batch, result)

            await asyncio.gather(*(one(batch) for batch in batches))
        return result

    async def _submit(
        self, client: BatchClient, batch: events_pb2.BatchSubmission, result: LoadResult
    ) -> None:
        """Send the batch; then, while the worker refuses some of it, send those items again.

        The batch worker derives each item's transaction id from the batch id and the item's
        index, so only the items it did not store go again, as a batch of their own.
        """
        base = batch.batch_id
        for attempt in range(self.attempts):
            batch.batch_id = base if attempt == 0 else f"{base}-r{attempt}"
            reply = await asyncio.wait_for(
                await client.publish(batch), timeout=self.reply_timeout_s
            )
            result.accepted += len(reply.accepted)
            if reply.refused_reason:
                refused = reply.refused_reason
            elif reply.rejected:
                refused = (
                    f"{len(reply.rejected)} rejected, first: {list(reply.rejected[0].violations)}"
                )
                batch = only(batch, [item.index for item in reply.rejected])
            else:
                result.batches += 1
                return
            log.info("batch %s refused (%s); retrying", batch.batch_id, refused)
            result.retried += 1
            await asyncio.sleep(self.retry_pause_s)
        result.batches += 1
        result.rejected += len(reply.rejected)
        result.problems.append(f"{base}: {refused}")


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
