"""A scenario's transactions as the messages intake publishes, handed to the real ingest handler in
micro-batches as a worker would get them: in time order, some sent again, some out of order, the
ones the handler parks delivered again later, each micro-batch handled at its own moment."""

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sanad.amqp.verdicts import Dead, Retry, TransientError
from sanad.records import SUBMITTED_TYPE, Document, document_from_submitted
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.integration.metrics_scenario import Transaction
from tests.integration.workers_support import RATED_TYPE, STATUS_CHANGED_TYPE
from workers.batch.domain import apply_history
from workers.ingest.handlers import IngestHandler


@dataclass(frozen=True)
class Delivery:
    """What the handler reads of an incoming message."""

    body: bytes
    type: str
    time: datetime


def submitted_of(tx: Transaction) -> events_pb2.TransactionSubmitted:
    """Its submission, as intake publishes it."""
    governorate, wilayat = tx.place
    return events_pb2.TransactionSubmitted(
        transaction_id=tx.transaction_id,
        center_id=tx.centre.center_id,
        governorate_code=governorate,
        wilayat_code=wilayat,
        service_code=f"SVC-{tx.sla_hours}",
        agency_code="ROP",
        sla_hours=tx.sla_hours,
        channel=common_pb2.CHANNEL_COUNTER,
        fee_baisa=tx.fee_baisa,
        beneficiary_hash="ab" * 32,
        beneficiary_masked="*****678",
        submit_time=to_timestamp(tx.submit_time),
    )


def messages_of(tx: Transaction) -> list[Delivery]:
    """Its submission, its numbered status changes and its rating, as intake publishes them."""
    submitted = submitted_of(tx)
    found = [Delivery(submitted.SerializeToString(), SUBMITTED_TYPE, tx.submit_time)]
    for sequence, (status, at) in enumerate(tx.steps, start=1):
        change = events_pb2.TransactionStatusChanged(
            transaction_id=tx.transaction_id,
            change_id=uuid.uuid4().hex,
            status=common_pb2.TransactionStatus.Value(f"TRANSACTION_STATUS_{status.value}"),
            time=to_timestamp(at),
            actor="ROP",
            sequence=sequence,
        )
        found.append(Delivery(change.SerializeToString(), STATUS_CHANGED_TYPE, at))
    if tx.rating_time is not None:
        rated = events_pb2.TransactionRated(
            transaction_id=tx.transaction_id,
            rating=tx.rating,
            time=to_timestamp(tx.rating_time),
            actor="centre",
        )
        found.append(Delivery(rated.SerializeToString(), RATED_TYPE, tx.rating_time))
    return found


def queue_of(rng: random.Random, chosen: list[Transaction]) -> list[Delivery]:
    """Every message in time order, a tenth of them sent again a little later, and now and then
    two neighbours swapped (two workers, or a publish retried)."""
    live = (m for tx in chosen if not tx.migrated for m in messages_of(tx))
    queue = sorted(live, key=lambda m: m.time)
    for index in range(len(queue) - 1):
        if rng.random() < 0.1:
            queue[index], queue[index + 1] = queue[index + 1], queue[index]
    for message in list(queue):
        if rng.random() < 0.1:
            queue.insert(min(len(queue), queue.index(message) + rng.randint(1, 30)), message)
    return queue


async def deliver(
    rng: random.Random,
    workers: list[IngestHandler],
    queue: list[Delivery],
    set_clock: Callable[[datetime], None],
) -> None:
    """Hand the queue to the handlers, consuming side by side, in micro-batches of 1 to 12, each
    at the latest moment it holds; what a handler parks comes back in a later one, a micro-batch
    that failed transiently (a write conflict with the other worker that persisted) comes back
    whole. Nothing may be dead-lettered."""
    waiting = list(queue)
    latest = [waiting[0].time]
    handled = [0]

    async def consume(handler: IngestHandler) -> None:
        idle = 0
        while waiting or idle < 50:
            if not waiting:  # the other worker may still park something
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            handled[0] += 1
            assert handled[0] < 10 * len(queue), "parked messages never got through"
            size = rng.randint(1, 12)
            batch = waiting[:size]
            del waiting[:size]
            latest[0] = max([latest[0], *(m.time for m in batch)])
            set_clock(latest[0] + timedelta(seconds=rng.uniform(0.001, 2)))
            try:
                outcomes = await handler(batch)  # type: ignore[arg-type]
            except TransientError:
                waiting[:0] = batch
                continue
            for message, outcome in zip(batch, outcomes, strict=True):
                assert not isinstance(outcome, Dead), (outcome, message.type)
                if isinstance(outcome, Retry):
                    waiting.insert(min(len(waiting), rng.randint(1, 5)), message)

    await asyncio.gather(*(consume(handler) for handler in workers))


def migrated_documents(chosen: list[Transaction], now: datetime) -> list[Document]:
    """The migrated transactions as the batch worker stores their history items."""
    found = []
    for tx in chosen:
        if not tx.migrated:
            continue
        item = events_pb2.HistoricalTransaction(
            history=[
                intake_pb2.StatusChange(
                    status=f"TRANSACTION_STATUS_{status.value}", time=to_timestamp(at)
                )
                for status, at in tx.steps
            ],
            rating=tx.rating,
        )
        doc = apply_history(document_from_submitted(submitted_of(tx), tx.submit_time), item, now)
        assert isinstance(doc, dict), doc
        found.append(doc)
    return found
