"""Intake's use cases: validate against the snapshot, claim the request id, publish, confirm.

A fresh submission's message carries the call's audit event (sanad.security.audit.take_offered):
the ingest worker stores it with the transaction, and intake writes no event of its own for it.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.ids import new_id
from sanad.errors import AlreadyExists, Unavailable
from sanad.records import submitted_event
from sanad.security import audit
from sanad.security.identity import Identity
from sanad.telemetry.metrics import count_submitted
from services.intake import access
from services.intake.deadline import Deadline
from services.intake.domain import CenterView, ServiceView, Submission, validate


class Snapshot(Protocol):
    centers: dict[str, CenterView]
    services: dict[str, ServiceView]

    @property
    def ready(self) -> bool: ...


class Publisher(Protocol):
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        timeout_s: float | None = None,
    ) -> None: ...


class Store(Protocol):
    async def claim_request(
        self,
        key: str,
        transaction_id: str,
        fingerprint: str,
        submit_time: datetime,
        timeout_s: float | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Accepted:
    transaction_id: str
    submit_time: datetime


class Intake:
    """Submission of transactions."""

    def __init__(
        self,
        snapshot: Snapshot,
        publisher: Publisher,
        store: Store,
        topology: Topology,
        civil_secret: bytes,
    ) -> None:
        self.snapshot = snapshot
        self.publisher = publisher
        self.store = store
        self.topology = topology
        self.civil_secret = civil_secret

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        """Return only after the broker confirmed the TransactionSubmitted message.

        A reused request id (per caller) with another payload is ALREADY_EXISTS:
        the id names a resource that exists, and retrying will not help.
        """
        if not self.snapshot.ready:
            raise Unavailable("intake is still loading the registry; retry shortly")
        access.check_center_scope(identity, submission.center_id)
        now = utcnow()
        center, service = validate(
            submission,
            self.snapshot.centers.get(submission.center_id),
            self.snapshot.services.get(submission.service_code),
            now,
        )
        access.check_submit(identity, center.id, service.agency_code)
        # Milliseconds, as stored: a retry answered from the record shows the same time.
        submit_time = to_millisecond(now)
        transaction_id = new_id()
        fresh = True
        if submission.request_id:
            key = hashlib.sha256(f"{caller}\x1f{submission.request_id}".encode()).hexdigest()
            fingerprint = submission.fingerprint()
            record = await self.store.claim_request(
                key, transaction_id, fingerprint, submit_time, deadline.left()
            )
            if record["fingerprint"] != fingerprint:
                raise AlreadyExists(
                    f"request id {submission.request_id!r} was already used for another transaction"
                )
            fresh = record["transaction_id"] == transaction_id
            transaction_id, submit_time = record["transaction_id"], record["submit_time"]
        # A fresh submission's audit event rides in its message, stored with the transaction.
        carried = audit.take_offered(transaction_id=transaction_id) if fresh else None
        event = submitted_event(
            submission,
            center,
            service,
            transaction_id=transaction_id,
            submitted_by=caller,
            submit_time=submit_time,
            civil_secret=self.civil_secret,
        )
        if carried is not None:
            event.audit.CopyFrom(audit.to_proto(carried))
        await self.publisher.publish(
            self.topology.transactions_exchange,
            SUBMITTED,
            event.SerializeToString(),
            message_type=event.DESCRIPTOR.full_name,
            message_id=transaction_id,
            timeout_s=deadline.left(),
        )
        if fresh:  # a replayed request id was counted when it was first accepted
            count_submitted(
                center.governorate_code,
                center.wilayat_code,
                service.agency_code,
                submission.fee_baisa,
            )
        return Accepted(transaction_id, submit_time)
