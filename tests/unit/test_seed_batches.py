"""The seed loader sends again only what the batch worker did not store."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from sanad.amqp.batches import BatchClient
from sanad.seed.batches import BatchLoader, LoadResult, ended, only
from sanad.v1 import events_pb2, intake_pb2


class Worker:
    """A batch worker that rejects the items whose request ids it has not been told to accept
    yet (as one whose registry snapshot is behind), and remembers every batch it was sent."""

    def __init__(self, late: set[str]) -> None:
        self.late = late
        self.sent: list[events_pb2.BatchSubmission] = []

    async def publish(
        self, batch: events_pb2.BatchSubmission, **_: object
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


class Rejecting(Worker):
    """Rejects every item for its fee, however often it is sent."""

    async def publish(
        self, batch: events_pb2.BatchSubmission, **_: object
    ) -> asyncio.Future[events_pb2.BatchResult]:
        self.sent.append(batch)
        result = events_pb2.BatchResult(batch_id=batch.batch_id)
        for index in range(len(batch.items)):
            item = result.rejected.add(index=index)
            item.violations.add(field="fee_baisa", description="below the catalogue's 5000")
            item.violations.add(field="channel", description="unknown")
        answer: asyncio.Future[events_pb2.BatchResult] = asyncio.get_running_loop().create_future()
        answer.set_result(result)
        return answer


async def test_items_rejected_at_every_attempt_are_said_as_batch_submit_says_them() -> None:
    loader = BatchLoader("amqp://unused", "p", attempts=2, retry_pause_s=0)
    result = LoadResult()

    await loader._submit(Rejecting(late=set()), batch_of(["l0", "l1"], []), result)  # type: ignore[arg-type]

    # The violations' protobuf text before: [field: "fee_baisa"\ndescription: ...\n, ...].
    assert result.problems == [
        "b: 2 rejected, first: fee_baisa: below the catalogue's 5000; channel: unknown"
    ]
    assert (result.batches, result.rejected, result.retried) == (1, 2, 2)


class Refusing(Worker):
    """Refuses the batches whose ids it is given, as a whole."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__(late=set())
        self.refused = refused

    async def publish(
        self, batch: events_pb2.BatchSubmission, **_: object
    ) -> asyncio.Future[events_pb2.BatchResult]:
        if batch.batch_id not in self.refused:
            return await super().publish(batch, **_)
        self.sent.append(batch)
        answer: asyncio.Future[events_pb2.BatchResult] = asyncio.get_running_loop().create_future()
        answer.set_result(
            events_pb2.BatchResult(batch_id=batch.batch_id, refused_reason="used for other content")
        )
        return answer


class Silent(Worker):
    """Takes every batch and never answers (no batch worker running)."""

    async def publish(
        self, batch: events_pb2.BatchSubmission, **_: object
    ) -> asyncio.Future[events_pb2.BatchResult]:
        self.sent.append(batch)
        return asyncio.get_running_loop().create_future()


def connected(monkeypatch: pytest.MonkeyPatch, worker: Worker) -> None:
    """BatchLoader.load talks to this worker instead of a broker."""

    @asynccontextmanager
    async def connect(*args: object, **kwargs: object) -> AsyncIterator[Worker]:
        yield worker

    monkeypatch.setattr(BatchClient, "connect", connect)


def batches(count: int) -> list[events_pb2.BatchSubmission]:
    return [
        events_pb2.BatchSubmission(
            batch_id=f"seed-{n}", center_id="C1", items=[intake_pb2.SubmitTransactionRequest()]
        )
        for n in range(count)
    ]


async def test_a_refused_first_batch_stops_the_load_and_says_to_keep_the_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Refusing({"seed-0"})
    connected(monkeypatch, worker)

    result = await BatchLoader("amqp://unused", "p", retry_pause_s=0).load(batches(5))

    assert [b.batch_id for b in worker.sent] == ["seed-0"]
    assert result.problems[0] == "seed-0: refused: used for other content"
    assert "another --batch-size" in result.problems[1]


async def test_a_refused_batch_is_reported_and_never_sent_again_under_a_new_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Refusing({"seed-2"})
    connected(monkeypatch, worker)

    result = await BatchLoader("amqp://unused", "p", retry_pause_s=0).load(batches(4))

    assert sorted(b.batch_id for b in worker.sent) == ["seed-0", "seed-1", "seed-2", "seed-3"]
    assert result.problems == ["seed-2: refused: used for other content"]
    assert (result.batches, result.accepted, result.retried) == (4, 3, 0)


async def test_no_answer_in_time_is_one_problem_and_stops_the_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Silent(late=set())
    connected(monkeypatch, worker)
    loader = BatchLoader("amqp://unused", "p", window=2, reply_timeout_s=0.05)

    result = await loader.load(batches(10))

    assert len(result.problems) == 1
    assert "no answer within 0.05 s" in result.problems[0]
    assert "Seed again" in result.problems[0]
    assert len(worker.sent) == 1  # the first batch, alone: nothing else was sent


class Alarmed:
    """The batch exchange of a broker under a memory or disk alarm: it takes publishes and
    confirms none."""

    async def publish(self, *_: object, **__: object) -> None:
        await asyncio.Event().wait()


async def test_a_broker_that_confirms_no_publish_is_one_problem_within_the_reply_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = BatchClient(Alarmed(), "amq.gen-replies", "guest")  # type: ignore[arg-type]

    @asynccontextmanager
    async def connect(*args: object, **kwargs: object) -> AsyncIterator[BatchClient]:
        yield client

    monkeypatch.setattr(BatchClient, "connect", connect)
    loader = BatchLoader("amqp://unused", "p", window=2, reply_timeout_s=0.05)

    result = await asyncio.wait_for(loader.load(batches(3)), timeout=5)

    assert result.problems == [
        "seed-0: RabbitMQ confirmed no publish within 0.05 s: a memory or disk alarm blocks"
        " publishers until it clears. Seed again: batches answered are answered the same"
    ]


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [("is that RabbitMQ's port?", "is that RabbitMQ's port?"), ("refused", "refused.")],
)
def test_a_reason_ends_as_one_sentence(reason: str, sentence: str) -> None:
    # "… address and port?. Seed again" before.
    assert ended(reason) == sentence
