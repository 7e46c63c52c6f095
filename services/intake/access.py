"""Who may do what to which transaction (DESIGN section 6); pure rules, no I/O.

A centre (or batch) identity submits, reads, lists, cancels and rates only its
own centre's transactions; a ministry reads, updates and cancels only its own
agency's; an admin does everything. Operators read statistics, not transactions
(the policy table, sanad.security.policy, keeps them from these calls).
"""

from typing import Any

from sanad.domain.submissions import shown_id
from sanad.errors import PermissionDenied
from sanad.security.identity import Identity, Role


def _denied(identity: Identity, what: str) -> PermissionDenied:
    return PermissionDenied(f"{identity.role} {shown_id(identity.subject)!r} may not {what}")


def check_submit(identity: Identity, center_id: str, agency_code: str) -> None:
    """Centres for themselves; ministries for their own services."""
    if identity.may_act_for_center(center_id) or identity.may_act_for_agency(agency_code):
        return
    raise _denied(identity, f"submit for centre {shown_id(center_id)}")


def check_center_scope(identity: Identity, center_id: str) -> None:
    """A centre or batch identity names only its own centre, checked before anything about
    another centre (its licence, its services) can show in a validation error."""
    if identity.role in (Role.CENTRE, Role.BATCH) and identity.center_id != center_id:
        raise _denied(identity, f"submit for centre {shown_id(center_id)}")


def may_read(identity: Identity, doc: dict[str, Any]) -> bool:
    """Admins read all; centres and ministries their own. A transaction the caller may not
    read is answered as one that does not exist (reading.stored): NOT_FOUND, not
    PERMISSION_DENIED, so its id's existence is not told outside its centre and agency."""
    return identity.may_act_for_center(doc["center_id"]) or identity.may_act_for_agency(
        doc["agency_code"]
    )


def check_update(identity: Identity, doc: dict[str, Any]) -> None:
    """Only the agency owning the service reports progress."""
    if not identity.may_act_for_agency(doc["agency_code"]):
        raise _denied(identity, f"update transaction {doc['_id']}")


def check_cancel(identity: Identity, doc: dict[str, Any]) -> None:
    """The serving centre or the owning agency."""
    if identity.may_act_for_center(doc["center_id"]):
        return
    if identity.may_act_for_agency(doc["agency_code"]):
        return
    raise _denied(identity, f"cancel transaction {doc['_id']}")


def check_rate(identity: Identity, doc: dict[str, Any]) -> None:
    """The centre records its beneficiary's rating."""
    if not identity.may_act_for_center(doc["center_id"]):
        raise _denied(identity, f"rate transaction {doc['_id']}")


def listing_scope(identity: Identity, center_id: str) -> tuple[str, str]:
    """The centre to list and the agency to restrict to, or PermissionDenied.

    A centre identity lists its own centre when none is named.
    """
    if identity.role in (Role.CENTRE, Role.BATCH):
        center_id = center_id or identity.center_id
    if identity.role is Role.ADMIN or identity.may_act_for_center(center_id):
        return center_id, ""
    if identity.role is Role.MINISTRY:
        return center_id, identity.agency_code
    raise _denied(identity, f"list transactions of centre {shown_id(center_id)}")
