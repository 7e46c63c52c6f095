"""Turns AMQP deliveries into stored transactions; decides which messages are poison."""

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import DecodeError

from sanad.amqp.consumer import Dead, Outcome
from sanad.domain.clock import utcnow
from sanad.records import Document, document_from_submitted
from sanad.telemetry.metrics import RECORDED_LAG_SECONDS
from sanad.v1 import events_pb2

log = logging.getLogger("sanad.ingest")

SUBMITTED_TYPE = events_pb2.TransactionSubmitted.DESCRIPTOR.full_name


class Store(Protocol):
    async def record_submissions(self, documents: Sequence[Document]) -> int: ...


def decode_submitted(message: AbstractIncomingMessage, now: datetime) -> Document | Dead:
    """The document to store, or why the message is poison."""
    if message.type != SUBMITTED_TYPE:
        return Dead("unknown-type", f"message type {message.type!r} is not handled here")
    event = events_pb2.TransactionSubmitted()
    try:
        event.ParseFromString(message.body)
    except DecodeError as error:
        return Dead("undecodable", f"not a valid {SUBMITTED_TYPE}: {error}")
    missing = [f for f in ("transaction_id", "center_id", "service_code") if not getattr(event, f)]
    if missing or not event.HasField("submit_time"):
        return Dead("invalid", f"missing fields: {', '.join(missing) or 'submit_time'}")
    return document_from_submitted(event, now)


class IngestHandler:
    """One micro-batch: decode all, store the good ones in one write, dead-letter the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, batch: Sequence[AbstractIncomingMessage]) -> list[Outcome]:
        now = utcnow()
        decoded = [decode_submitted(message, now) for message in batch]
        documents = [d for d in decoded if not isinstance(d, Dead)]
        if documents:
            new = await self.store.record_submissions(documents)
            log.debug("stored micro-batch", extra={"size": len(documents), "new": new})
            for doc in documents:
                RECORDED_LAG_SECONDS.observe((now - doc["submit_time"]).total_seconds())
        return [d if isinstance(d, Dead) else None for d in decoded]
