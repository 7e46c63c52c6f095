"""Tracking use cases: the status changes, cancellations and ratings agencies, centres and
beneficiaries make, checked and queued for the transaction's writer (reads: reading.py; how a
status change is judged, numbered and sent: status_changes.py; ratings: ratings.py)."""

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.characters import text_violations
from sanad.domain.codes import request_id_violations
from sanad.domain.transactions import AGENCY_REPORTABLE, Status
from sanad.errors import Invalid, Violation
from sanad.security.identity import Identity
from services.intake import access
from services.intake.change_requests import Change
from services.intake.ports import Publisher
from services.intake.ratings import Ratings, Requests
from services.intake.reading import Finds, stored
from services.intake.resends import Resends
from services.intake.status_changes import StatusChanges

MAX_NOTE_LENGTH = 1000


class Tracker:
    """The changes agencies, centres and beneficiaries make to stored transactions."""

    def __init__(
        self,
        transactions: Finds,
        requests: Requests,
        publisher: Publisher,
        topology: Topology,
        resends: Resends | None = None,
    ) -> None:
        self.transactions = transactions
        self.requests = requests
        self.publisher = publisher
        self.topology = topology
        self.resends = Resends() if resends is None else resends
        self.changes = StatusChanges(requests, publisher, topology, self.resends)
        self.ratings = Ratings(
            transactions, requests, publisher, topology, changes=self.changes, resends=self.resends
        )
        self.rate = self.ratings.rate
        self.send_rating = self.ratings.send_rating  # a try of the resends (resends.py)

    async def update_status(
        self,
        transaction_id: str,
        status: Status | None,
        note: str,
        *,
        actor: str,
        identity: Identity,
        deadline: Deadline,
        request_id: str = "",
    ) -> Change:
        """An agency's progress report: reportable status, legal from the stored one."""
        found = request_id_violations(request_id)
        if status not in AGENCY_REPORTABLE:
            names = ", ".join(sorted(s.value for s in AGENCY_REPORTABLE))
            found.append(Violation("status", f"must be one of {names}"))
        if len(note) > MAX_NOTE_LENGTH:
            found.append(Violation("note", f"must be at most {MAX_NOTE_LENGTH} characters"))
        found += text_violations({"note": note})
        if found:
            raise Invalid(found)
        assert status is not None
        doc = await stored(self.transactions, transaction_id, deadline, identity)
        access.check_update(identity, doc)
        return await self.changes.make(doc, status, note, actor, deadline, request_id=request_id)

    async def cancel(
        self,
        transaction_id: str,
        reason: str,
        actor: str,
        identity: Identity,
        deadline: Deadline,
        *,
        request_id: str = "",
    ) -> Change:
        """Cancel a transaction that has not finished."""
        found = request_id_violations(request_id)
        if len(reason) > MAX_NOTE_LENGTH:
            found.append(Violation("reason", f"must be at most {MAX_NOTE_LENGTH} characters"))
        found += text_violations({"reason": reason})
        if found:
            raise Invalid(found)
        doc = await stored(self.transactions, transaction_id, deadline, identity)
        access.check_cancel(identity, doc)
        return await self.changes.make(
            doc, Status.CANCELLED, reason, actor, deadline, request_id=request_id
        )
