"""Who is calling, as established by authentication, available to handlers through a contextvar.

The authorization interceptor sets the identity of every call before the servicer runs. Domain code
asks `current()` to scope what a caller may see or change (a centre only its own transactions, a
ministry only its own agency's services).
"""

import contextvars
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The roles of DESIGN section 6."""

    MINISTRY = "ministry"  # scoped to one agency
    CENTRE = "centre"  # scoped to one centre
    OPERATOR = "operator"  # read-only statistics
    BATCH = "batch"  # scoped to one centre, through the queue
    ADMIN = "admin"
    SERVICE = "service"  # another Sanad process, e.g. intake watching the registry


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: subject (e.g. certificate CN or token sub), role and scope."""

    subject: str
    role: Role
    agency_code: str = ""
    center_id: str = ""

    @property
    def scope(self) -> str:
        """What the role is scoped to: a ministry's agency, a centre's or batch's centre;
        nothing for the other roles."""
        if self.role is Role.MINISTRY:
            return self.agency_code
        if self.role in (Role.CENTRE, Role.BATCH):
            return self.center_id
        return ""

    @property
    def actor(self) -> str:
        """How changes made by this identity are recorded, and whose rate, streams and request
        ids a call uses: role, subject and the role's own scope."""
        scope = self.scope
        return f"{self.role}:{self.subject}" + (f"@{scope}" if scope else "")

    def may_act_for_center(self, center_id: str) -> bool:
        """Admins act for every centre; centre and batch identities only for their own."""
        if self.role is Role.ADMIN:
            return True
        return self.role in (Role.CENTRE, Role.BATCH) and self.center_id == center_id

    def may_act_for_agency(self, agency_code: str) -> bool:
        """Admins act for every agency; ministries only for their own."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.MINISTRY and self.agency_code == agency_code


# The caller of a call without credentials when SANAD_AUTH_MODE=dev (sanad.security.authenticate).
DEV_ADMIN = Identity(subject="dev-admin", role=Role.ADMIN)

# No default: code that asks outside a call the interceptor authorized fails closed, instead of
# acting as an admin.
_current: contextvars.ContextVar[Identity] = contextvars.ContextVar("identity")


def current() -> Identity:
    """The identity of the call being handled; LookupError outside a call the authorization
    interceptor admitted."""
    try:
        return _current.get()
    except LookupError:
        raise LookupError("no caller identity: current() outside an authorized call") from None


def set_current(identity: Identity) -> contextvars.Token[Identity]:
    """Set by the authorization interceptor for the duration of one call."""
    return _current.set(identity)
