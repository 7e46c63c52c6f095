"""The seed loader sends again only what the batch worker did not store."""

import asyncio

from sanad.seed.batches import BatchLoader, LoadResult, only
from sanad.v1 import events_pb2, intake_pb2


class Worker:
    """A batch worker that rejects the items whose request ids it has not been told to accept
    yet (as one whose registry snapshot is behind), and remembers every batch it was sent."""

    def __init__(self, late: set[str]) -> None:
        self.late = late
        self.sent: list[events_pb2.BatchSubmission] = []

    async def publish(
        self, batch: events_pb2.BatchSubmission
    ) -> asyncio.Future[events_pb2.BatchResult]:
        copy = events_pb2.BatchSubmission()
        copy.CopyFrom(batch)
        self.sent.append(copy)
        result = events_pb2.BatchResult(batch_id=batch.batch_id)
        items = [*batch.items, *(h.transaction for h in batch.history_items)]
        for index, item in enumerate(items):
            if item.request_id in self.late:
                result.rejected.add(index=index)
            else:
                result.accepted.add(index=index, transaction_id=f"{batch.batch_id}/{index}")
        self.late = set()  # caught up: everything is accepted from now on
        answer: asyncio.Future[events_pb2.BatchResult] = asyncio.get_running_loop().create_future()
        answer.set_result(result)
        return answer


def batch_of(live: list[str], history: list[str]) -> events_pb2.BatchSubmission:
    batch = events_pb2.BatchSubmission(batch_id="b", center_id="C1")
    for request_id in live:
        batch.items.add(request_id=request_id)
    for request_id in history:
        batch.history_items.add(
            transaction=intake_pb2.SubmitTransactionRequest(request_id=request_id)
        )
    return batch


async def test_only_the_rejected_items_are_sent_again_and_every_item_is_counted_once() -> None:
    worker = Worker(late={"l1", "h0"})
    loader = BatchLoader("amqp://unused", "p", retry_pause_s=0)
    result = LoadResult()

    await loader._submit(worker, batch_of(["l0", "l1", "l2"], ["h0", "h1"]), result)  # type: ignore[arg-type]

    assert [b.batch_id for b in worker.sent] == ["b", "b-r1"]
    again = worker.sent[1]
    assert [i.request_id for i in again.items] == ["l1"]
    assert [h.transaction.request_id for h in again.history_items] == ["h0"]
    assert (result.batches, result.accepted, result.rejected, result.retried) == (1, 5, 0, 1)


def test_only_keeps_live_items_then_history_items_by_index() -> None:
    kept = only(batch_of(["a", "b"], ["c", "d"]), [1, 3])

    assert [i.request_id for i in kept.items] == ["b"]
    assert [h.transaction.request_id for h in kept.history_items] == ["d"]
    assert (kept.batch_id, kept.center_id) == ("b", "C1")
