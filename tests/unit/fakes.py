"""In-memory fakes that more than one unit test module runs the real code against, and the stored
transaction they start from."""

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from google.protobuf.message import Message

from sanad.errors import Unavailable
from sanad.records import document_from_submitted
from sanad.rpc.timestamps import to_timestamp
from sanad.v1 import common_pb2, events_pb2

M = TypeVar("M", bound=Message)


class Published(NamedTuple):
    """One publish, as the broker would have taken it."""

    routing_key: str
    body: bytes
    message_type: str
    timeout_s: float | None


class RecordingPublisher:
    """The publisher intake's operations and tracking take: records every publish, confirmed at
    once (on_confirm runs then, as sanad.amqp.packing runs it), or refuses all of them as an
    unreachable broker does while `down`, and those of the routing keys in `unroutable` as a
    broker with no queue bound for them does."""

    def __init__(self) -> None:
        self.sent: list[Published] = []
        self.down = False
        self.unroutable: set[str] = set()

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        timeout_s: float | None = None,
        on_confirm: Callable[[], None] | None = None,
    ) -> None:
        if self.down:
            raise Unavailable("the message broker is unavailable; retry later")
        if routing_key in self.unroutable:
            raise Unavailable(f"the message broker refused the message: {routing_key}; retry later")
        self.sent.append(Published(routing_key, body, message_type, timeout_s))
        if on_confirm is not None:
            on_confirm()

    def decoded(self, kind: type[M]) -> list[M]:
        """Every body sent, read as `kind`; each must have been published as that type."""
        assert [p.message_type for p in self.sent] == [kind.DESCRIPTOR.full_name] * len(self.sent)
        return [kind.FromString(p.body) for p in self.sent]


def stored_transaction(transaction_id: str, submitted_at: datetime) -> dict[str, Any]:
    """A counter transaction of 5 rial at centre C1 (DA-NIZ), as the ingest worker stores it."""
    event = events_pb2.TransactionSubmitted(
        transaction_id=transaction_id,
        center_id="C1",
        governorate_code="DA",
        wilayat_code="DA-NIZ",
        service_code="S",
        agency_code="ROP",
        sla_hours=48,
        channel=common_pb2.CHANNEL_COUNTER,
        fee_baisa=5000,
        submit_time=to_timestamp(submitted_at),
    )
    return document_from_submitted(event, submitted_at)
