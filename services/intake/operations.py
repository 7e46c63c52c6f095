"""Intake's use cases: validate against the snapshot, claim the request id, publish, confirm.

A fresh submission's message carries the call's audit event
(sanad.security.audit_offer.take_offered): the ingest worker stores it with the transaction, and
intake writes no event of its own for it.
A replay carries none, even when the fresh call's publish failed: that message may have reached
the broker after all (a late confirm), and the worker stores only the event of the message that
stores the transaction; so the security interceptor writes a replay's event itself.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.ids import new_id
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed, Unavailable
from sanad.records import submitted_event
from sanad.security import audit, audit_offer
from sanad.security.identity import Identity
from sanad.telemetry.metrics import count_submitted
from services.intake import access
from services.intake.deadline import Deadline
from services.intake.domain import (
    CenterView,
    ServiceView,
    Submission,
    field_violations,
    request_key,
    validate,
)
from services.intake.unconfirmed import UnconfirmedClaims


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

    async def find_request(
        self, key: str, timeout_s: float | None = None
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Accepted:
    transaction_id: str
    submit_time: datetime


@dataclass(frozen=True)
class _Claim:
    """The transaction id a submission gets, whether it was new (not a replay), and the
    request key it was claimed under ("" without a request id: never replayed)."""

    transaction_id: str
    submit_time: datetime
    fresh: bool
    key: str = ""


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
        self.unconfirmed = UnconfirmedClaims()

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
        center = self.snapshot.centers.get(submission.center_id)
        service = self.snapshot.services.get(submission.service_code)
        try:
            center, service = validate(submission, center, service, now)
        except (Invalid, PreconditionFailed):
            # The registry may have changed since this request id was accepted (invariant 3).
            if center is None or service is None:
                raise
            claim = await self._prior_claim(submission, caller, deadline)
            if claim is None:
                raise
        else:
            claim = None
        access.check_submit(identity, center.id, service.agency_code)
        if claim is None:
            claim = await self._claim(submission, caller, to_millisecond(now), deadline)
        await self._publish(
            submission, center, service, caller=caller, claim=claim, deadline=deadline
        )
        return Accepted(claim.transaction_id, claim.submit_time)

    async def _claim(
        self, submission: Submission, caller: str, submit_time: datetime, deadline: Deadline
    ) -> _Claim:
        """A new transaction id, or the one this caller's request id was first given.

        submit_time is in milliseconds, as stored: a retry answered from the record shows
        the same time.
        """
        transaction_id = new_id()
        if not submission.request_id:
            return _Claim(transaction_id, submit_time, fresh=True)
        fingerprint = submission.fingerprint(self.civil_secret)
        key = request_key(caller, submission.request_id)
        record = await self.store.claim_request(
            key,
            transaction_id,
            fingerprint,
            submit_time,
            deadline.left(),
        )
        if record["fingerprint"] != fingerprint:
            raise AlreadyExists(
                f"request id {submission.request_id!r} was already used for another transaction"
            )
        fresh = record["transaction_id"] == transaction_id
        if fresh:
            self.unconfirmed.claimed(key)
        return _Claim(record["transaction_id"], record["submit_time"], fresh, key)

    async def _prior_claim(
        self,
        submission: Submission,
        caller: str,
        deadline: Deadline,
    ) -> _Claim | None:
        """The record of this very submission accepted earlier, when only the registry's state
        refuses it now (fee changed, licence suspended, service retired): a read, no claim.

        Only refusals pay this read; the normal path's one round trip stays the claim.
        """
        if not submission.request_id:
            return None
        if field_violations(submission, None):
            return None  # the request itself is bad, whatever the registry says
        key = request_key(caller, submission.request_id)
        record = await self.store.find_request(key, deadline.left())
        if record is None or record["fingerprint"] != submission.fingerprint(self.civil_secret):
            return None
        return _Claim(record["transaction_id"], record["submit_time"], fresh=False, key=key)

    async def _publish(
        self,
        submission: Submission,
        center: CenterView,
        service: ServiceView,
        *,
        caller: str,
        claim: _Claim,
        deadline: Deadline,
    ) -> None:
        """Publish (again, for a replay: the first publish may not have been confirmed), and
        count the transaction at the first confirm of its claim."""
        # A fresh submission's audit event rides in its message, stored with the transaction.
        transaction_id = claim.transaction_id
        carried = audit_offer.take_offered(transaction_id=transaction_id) if claim.fresh else None
        event = submitted_event(
            submission,
            center,
            service,
            transaction_id=transaction_id,
            submitted_by=caller,
            submit_time=claim.submit_time,
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
        # The first confirm of a claim made here counts: the fresh call's, or a replay's when
        # the fresh call's publish failed (services/intake/unconfirmed.py).
        if not claim.key or self.unconfirmed.confirmed(claim.key):
            count_submitted(
                center.governorate_code,
                center.wilayat_code,
                service.agency_code,
                submission.fee_baisa,
            )
