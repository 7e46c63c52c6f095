"""Intake's use cases: validate against the snapshot, claim the request id, publish, confirm.

A fresh submission's message carries the call's audit event
(sanad.security.audit_offer.take_offered): the ingest worker stores it with the transaction, and
intake writes no event of its own for it.
A replay carries none, even when the fresh call's publish failed: that message may have reached
the broker after all (a late confirm), and the worker stores the event a message carries whether
or not the replay's message stored the transaction first; so the security interceptor writes a
replay's event itself.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sanad.amqp.topology import SUBMITTED, Topology
from sanad.deadline import Deadline
from sanad.domain.characters import ID_CHARACTER_RULES
from sanad.domain.clock import to_millisecond, utcnow
from sanad.domain.codes import required_code_violations
from sanad.domain.ids import new_id
from sanad.domain.submissions import (
    CenterView,
    ServiceView,
    Submission,
    as_claimed,
    claimed_fields,
    field_violations,
    request_key,
    validate,
)
from sanad.errors import (
    AlreadyExists,
    Invalid,
    NotFound,
    PreconditionFailed,
    Unavailable,
    Violation,
    check,
)
from sanad.records import submitted_event
from sanad.security import audit, audit_offer
from sanad.security.identity import Identity
from sanad.telemetry.metrics import count_submitted
from sanad.v1 import events_pb2
from services.intake import access
from services.intake.ports import ConfirmingPublisher, Lookup, Snapshot, Store
from services.intake.unconfirmed import UnconfirmedClaims


@dataclass(frozen=True)
class Accepted:
    transaction_id: str
    submit_time: datetime


@dataclass(frozen=True)
class _Claim:
    """The transaction id a submission gets, whether it was new (not a replay), the request key
    it was claimed under ("" without a request id: never replayed), and what its message takes
    from the registry as the claim recorded it (None: from the snapshot)."""

    transaction_id: str
    submit_time: datetime
    fresh: bool
    key: str = ""
    registry: Mapping[str, Any] | None = None


class Intake:
    """Submission of transactions."""

    def __init__(
        self,
        snapshot: Snapshot,
        publisher: ConfirmingPublisher,
        store: Store,
        topology: Topology,
        civil_secret: bytes,
        *,
        lookup: Lookup | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.lookup = lookup
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
            raise Unavailable(
                "intake's copy of the registry is not current (still loading, or the registry"
                " has been out of reach for longer than its grace); retry shortly"
            )
        service = self.snapshot.services.get(submission.service_code)
        if required_code_violations("center_id", submission.center_id):
            # No centre named at all, so no scope to check: every bad field, center_id among
            # them, rather than a denial that would echo what the caller sent.
            check(field_violations(submission, service))
        access.check_center_scope(identity, submission.center_id)
        now = utcnow()
        center = self.snapshot.centers.get(submission.center_id)
        try:
            center, service = await self._validated(
                submission, center, service, now, caller=caller, deadline=deadline
            )
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
            claim = await self._claim(
                submission, caller, to_millisecond(now), deadline, claimed_fields(center, service)
            )
        await self._publish(
            submission, center, service, caller=caller, claim=claim, deadline=deadline
        )
        return Accepted(claim.transaction_id, claim.submit_time)

    async def _validated(
        self,
        submission: Submission,
        center: CenterView | None,
        service: ServiceView | None,
        now: datetime,
        *,
        caller: str,
        deadline: Deadline,
    ) -> tuple[CenterView, ServiceView]:
        """validate() against the snapshot; a refusal that rests on the registry's state, the
        submission being well formed, is judged again against the registry as it is now, in
        case the snapshot has not caught up with a change yet (sanad/registry_lookup.py). When the
        registry does not answer, or agrees with the snapshot, the first refusal stands. The
        question counts against caller's share of the process's questions."""
        try:
            return validate(submission, center, service, now)
        except (Invalid, NotFound, PreconditionFailed):
            if self.lookup is None or field_violations(submission, None):
                raise
            current = await self.lookup.current(
                submission.center_id, submission.service_code, deadline.left(), caller
            )
            if current is None or current == (center, service):
                raise
        return validate(submission, *current, now)

    async def _claim(
        self,
        submission: Submission,
        caller: str,
        submit_time: datetime,
        deadline: Deadline,
        registry: Mapping[str, Any],
    ) -> _Claim:
        """A new transaction id, or the one this caller's request id was first given.

        submit_time is in milliseconds, as stored: a retry answered from the record shows
        the same time. The record keeps what the message takes from the registry, so that a
        replay publishes the same message whatever the registry says by then.
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
            registry=registry,
            # Given up on, then recorded by the shared insert: the retry replays the claim,
            # and its first confirm counts the transaction.
            claimed_late=functools.partial(self.unconfirmed.claimed, key),
        )
        if record["fingerprint"] != fingerprint:
            raise AlreadyExists(
                f"request id {submission.request_id!r} was already used for another transaction"
            )
        fresh = record["transaction_id"] == transaction_id
        if fresh:
            self.unconfirmed.claimed(key)
        return _Claim(
            record["transaction_id"], record["submit_time"], fresh, key, record.get("registry")
        )

    async def _prior_claim(
        self,
        submission: Submission,
        caller: str,
        deadline: Deadline,
    ) -> _Claim | None:
        """The record of this very submission accepted earlier, when only the registry's state
        refuses it now (fee changed, licence suspended, service retired), or only its request
        id's characters, accepted before the rules on them: a read, no claim. A retry must get
        its transaction, lest its caller mend the id and make a second one.

        Only refusals pay this read; the normal path's one round trip stays the claim.
        """
        if not submission.request_id:
            return None
        if [v for v in field_violations(submission, None) if not _of_id_characters(v)]:
            return None  # the request itself is bad, whatever the registry says
        key = request_key(caller, submission.request_id)
        record = await self.store.find_request(key, deadline.left())
        if record is None or record["fingerprint"] != submission.fingerprint(self.civil_secret):
            return None
        return _Claim(
            record["transaction_id"],
            record["submit_time"],
            fresh=False,
            key=key,
            registry=record.get("registry"),
        )

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
        """Publish (again, for a replay: the first publish may not have been confirmed); the
        transaction is counted at the first confirm of its claim."""
        # A fresh submission's audit event rides in its message, stored with the transaction.
        transaction_id = claim.transaction_id
        carried = audit_offer.take_offered(transaction_id=transaction_id) if claim.fresh else None
        # A replay says what the first attempt's message said (its fee and time are the claim's);
        # a fresh claim recorded what was just read.
        if not claim.fresh:
            center, service = as_claimed(center, service, claim.registry)
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
            audit.write_proto(carried, event.audit)
        await self.publisher.publish(
            self.topology.transactions_exchange,
            SUBMITTED,
            event.SerializeToString(),
            message_type=event.DESCRIPTOR.full_name,
            message_id=transaction_id,
            timeout_s=deadline.left(),
            on_confirm=functools.partial(self._confirmed, claim.key, event),
        )

    def _confirmed(self, key: str, event: events_pb2.TransactionSubmitted) -> None:
        """The broker confirmed a message of this claim: count the transaction if it is the
        claim's first confirm here, the fresh call's or a replay's when the fresh call's publish
        failed (services/intake/unconfirmed.py). Run by the publisher when the confirm comes,
        also when the caller stopped waiting before: the message will be stored all the same."""
        if not key or self.unconfirmed.confirmed(key):
            count_submitted(
                event.governorate_code, event.wilayat_code, event.agency_code, event.fee_baisa
            )


def _of_id_characters(violation: Violation) -> bool:
    """A request id refused for its characters alone (characters.id_violations), which an id
    claimed before those rules may hold."""
    return violation.field == "request_id" and violation.description in ID_CHARACTER_RULES
