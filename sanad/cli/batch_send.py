"""Sends a batch file's BatchSubmissions through RabbitMQ and gathers every BatchResult.

Each chunk of rows is one BatchSubmission published to the batch exchange with
reply_to (an exclusive, auto-delete reply queue) and correlation_id; the
sender waits for each BatchResult, and the outcome names every accepted and
rejected row by its place in the file.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from sanad.amqp.batches import BatchClient, rejection
from sanad.amqp.connecting import CONNECT_TIMEOUT_S
from sanad.amqp.handling import BROKER_ERRORS
from sanad.records import item_count
from sanad.v1 import events_pb2


@dataclass
class Outcome:
    """What the workers answered for a whole file."""

    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    # (chunk id, reason) of each chunk refused whole.
    refused: list[tuple[str, str]] = field(default_factory=list)


class Unanswered(Exception):
    """The wait ended before every batch was answered: how many were sent (the others wait
    for the first one's answer, see send's first_alone) and how many of those answered."""

    def __init__(self, answered: int, sent: int, total: int, wait_s: float) -> None:
        held = " (the others go once the first is answered)" if sent < total else ""
        super().__init__(
            f"{sent} of {total} chunks sent{held}, {answered} answered within {wait_s:g} s"
        )
        self.answered = answered
        self.sent = sent
        self.total = total


class Cut(Exception):
    """The broker failed (or stalled past the wait) once a chunk had been published: that
    chunk and those confirmed may be stored, so the batch id is needed to send the file again."""

    def __init__(self, confirmed: int, total: int, cause: BaseException) -> None:
        super().__init__(confirmed, total, cause)
        self.confirmed = confirmed
        self.total = total
        self.cause = cause


@dataclass
class _Bar:
    """The progress line on a stream (None: none is drawn), and whether it is left open."""

    stream: TextIO | None
    open: bool = False

    def draw(self, done: int, total: int, width: int = 30) -> None:
        if self.stream is None:
            return
        filled = width * done // total if total else width
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows answered"
        )
        self.stream.flush()
        self.open = True

    def end(self) -> None:
        """End the line, if one is open."""
        if self.stream is not None and self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


@dataclass
class _Progress:
    """How many chunks were handed to the broker, and how many it confirmed."""

    published: int = 0
    confirmed: int = 0


async def send(
    url: str,
    prefix: str,
    batches: Sequence[events_pb2.BatchSubmission],
    wait_s: float,
    progress: TextIO | None = None,
    *,
    first_alone: bool = False,
) -> list[events_pb2.BatchResult]:
    """Publish each batch, confirmed, then wait up to wait_s for every BatchResult, in order.

    With first_alone, the first batch is answered before the others are published, and when
    it is refused as a whole its answer alone is returned: the others are not sent. A file
    sent again with its batch id but another --chunk is so refused at its first chunk (other
    content under that id) before a later chunk, whose id is new, could store rows again.

    Raises Unanswered when the wait ends first, TimeoutError when the broker has not answered
    within it, and aio_pika's errors when the broker cannot be reached or has no batch
    exchange under prefix.
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + wait_s
    # Connected within 5 s, or the wait when it is shorter (--wait is above zero).
    connect_s = min(wait_s, CONNECT_TIMEOUT_S)
    sent = _Progress()
    bar = _Bar(progress)
    try:
        async with BatchClient.connect(url, prefix, timeout_s=connect_s) as client:
            return await _send_all(
                client, batches, ends, wait_s, bar=bar, first_alone=first_alone, sent=sent
            )
    except (*BROKER_ERRORS, TimeoutError, asyncio.CancelledError) as error:
        if sent.published == 0 or not _from_broker(error):
            raise
        raise Cut(sent.confirmed, len(batches), error) from error
    finally:
        # However it ends (answered, a first chunk refused, an error, Ctrl-C), what the caller
        # prints next starts a line of its own.
        bar.end()


def _from_broker(error: BaseException) -> bool:
    """Whether the error is the broker's, not our own task being cancelled (Ctrl-C): aiormq
    fails pending confirms with CancelledError when its connection is closed under them."""
    if isinstance(error, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and task.cancelling() == 0
    return True


async def _publish(
    client: BatchClient,
    batch: events_pb2.BatchSubmission,
    ends: float,
    sent: _Progress,
) -> asyncio.Future[events_pb2.BatchResult]:
    """Publish one batch, confirmed within what is left of the wait (a broker under an alarm
    takes publishes and confirms none); TimeoutError when it is not."""
    sent.published += 1
    left = max(ends - asyncio.get_running_loop().time(), 0)
    answer = await client.publish(batch, timeout_s=left)
    sent.confirmed += 1
    return answer


async def _send_all(
    client: BatchClient,
    batches: Sequence[events_pb2.BatchSubmission],
    ends: float,
    wait_s: float,
    *,
    bar: _Bar,
    first_alone: bool,
    sent: _Progress,
) -> list[events_pb2.BatchResult]:
    """send()'s work on a connected client."""
    loop = asyncio.get_running_loop()
    answers: list[asyncio.Future[events_pb2.BatchResult]] = []
    if first_alone and batches:
        bar.draw(0, sum(item_count(batch) for batch in batches))
        answers.append(await _publish(client, batches[0], ends, sent))
        await asyncio.wait(answers, timeout=max(ends - loop.time(), 0))
        if not answers[0].done():
            raise Unanswered(0, len(answers), len(batches), wait_s)
        if answers[0].result().refused_reason:
            return [answers[0].result()]
    answers += [await _publish(client, batch, ends, sent) for batch in batches[len(answers) :]]
    sizes = {answer: item_count(batch) for answer, batch in zip(answers, batches, strict=True)}
    pending: set[asyncio.Future[events_pb2.BatchResult]] = {
        answer for answer in answers if not answer.done()
    }
    while pending and (left := ends - loop.time()) > 0:
        bar.draw(
            sum(n for answer, n in sizes.items() if answer not in pending), sum(sizes.values())
        )
        _, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    bar.draw(sum(n for answer, n in sizes.items() if answer not in pending), sum(sizes.values()))
    if pending:
        raise Unanswered(len(answers) - len(pending), len(answers), len(batches), wait_s)
    return [answer.result() for answer in answers]


def summarise(
    results: Sequence[events_pb2.BatchResult], batches: Sequence[events_pb2.BatchSubmission]
) -> Outcome:
    """File-wide row numbers (from 0) of accepted and rejected rows, and the chunks refused
    whole, each named by its own id: the answer to a body the worker did not read (too large,
    undecodable) names none. results answer batches in order, and may stop short (a first
    chunk refused: the others were not sent)."""
    outcome = Outcome()
    first = 0
    for result, batch in zip(results, batches, strict=False):
        if result.refused_reason:
            outcome.refused.append((batch.batch_id, result.refused_reason))
        outcome.accepted += len(result.accepted)
        for item in result.rejected:
            outcome.rejected.append((first + item.index, rejection(item)))
        first += item_count(batch)
    return outcome
