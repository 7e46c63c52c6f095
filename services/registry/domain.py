"""Registry rules: centres, licences and catalogue services, with no I/O."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sanad.errors import PreconditionFailed


def a_year_after(moment: datetime) -> datetime:
    """The same moment a calendar year later; from 29 February, on 28 February. A licence runs
    a year, not 365 days: across a 29 February those ended a day early, and every renewal (a
    year on from the last expiry) carried the drift on."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:  # 29 February, into a common year
        return moment.replace(year=moment.year + 1, day=28)


# An active licence is renewed in the last stretch of its term, not at any time: so a renewal
# re-sent after a lost reply is refused instead of silently adding a second year.
RENEWAL_WINDOW = timedelta(days=90)
# A licence changes a few times a year; the cap keeps its history, and so the centre, below
# gRPC's message limit however often it is suspended and reinstated (under 3 MB at worst).
MAX_LICENCE_EVENTS = 500


class LicenceStatus(StrEnum):
    """Names match sanad.v1.LicenceStatus."""

    APPLIED = "APPLIED"
    INITIALLY_APPROVED = "INITIALLY_APPROVED"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class LicenceAction(StrEnum):
    """Names match sanad.v1.LicenceAction."""

    APPROVE = "APPROVE"
    ACTIVATE = "ACTIVATE"
    SUSPEND = "SUSPEND"
    REINSTATE = "REINSTATE"
    RENEW = "RENEW"
    CANCEL = "CANCEL"


_S = LicenceStatus
_MOVES: dict[LicenceAction, tuple[frozenset[LicenceStatus], LicenceStatus]] = {
    LicenceAction.APPROVE: (frozenset({_S.APPLIED}), _S.INITIALLY_APPROVED),
    LicenceAction.ACTIVATE: (frozenset({_S.INITIALLY_APPROVED}), _S.ACTIVE),
    LicenceAction.SUSPEND: (frozenset({_S.ACTIVE}), _S.SUSPENDED),
    LicenceAction.REINSTATE: (frozenset({_S.SUSPENDED}), _S.ACTIVE),
    LicenceAction.RENEW: (frozenset({_S.ACTIVE, _S.EXPIRED}), _S.ACTIVE),
    LicenceAction.CANCEL: (frozenset(set(_S) - {_S.CANCELLED}), _S.CANCELLED),
}


@dataclass(frozen=True)
class LicenceEvent:
    """One recorded transition, with the expiry the licence holds after it (None before
    activation, and on events stored before events kept it)."""

    action: LicenceAction
    from_status: LicenceStatus
    to_status: LicenceStatus
    actor: str
    reason: str
    time: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Licence:
    """A centre's licence; `status` is as stored, `effective_status` counts expiry."""

    number: str
    status: LicenceStatus = LicenceStatus.APPLIED
    expires_at: datetime | None = None
    history: tuple[LicenceEvent, ...] = ()

    def effective_status(self, now: datetime) -> LicenceStatus:
        """ACTIVE past its expiry reads as EXPIRED."""
        if self.status is LicenceStatus.ACTIVE and self.expires_at and self.expires_at <= now:
            return LicenceStatus.EXPIRED
        return self.status

    def is_serving(self, now: datetime) -> bool:
        """May the centre serve transactions now?"""
        return self.effective_status(now) is LicenceStatus.ACTIVE


def transition(
    licence: Licence, action: LicenceAction, actor: str, reason: str, now: datetime
) -> Licence:
    """Apply one lifecycle action or raise PreconditionFailed."""
    # Cancelling ends the history, so it is never refused for the cap: a regulator can always
    # cancel a licence suspended and reinstated too often.
    if len(licence.history) >= MAX_LICENCE_EVENTS and action is not LicenceAction.CANCEL:
        raise PreconditionFailed(
            f"cannot {action.lower()} the licence: it already records {MAX_LICENCE_EVENTS} "
            "transitions, the most a centre's history keeps"
        )
    current = licence.effective_status(now)
    allowed_from, to_status = _MOVES[action]
    if current not in allowed_from:
        raise PreconditionFailed(f"cannot {action.lower()} a licence that is {current.lower()}")
    expires_at = licence.expires_at
    if action is LicenceAction.ACTIVATE:
        expires_at = a_year_after(now)
    elif action is LicenceAction.RENEW:
        expires_at = renewed_expiry(licence, now)
    after = replace(licence, status=to_status, expires_at=expires_at)
    # The history then says when each stretch lapses: a late renewal does not hide the gap. It
    # says the status the licence reads after the action: reinstated past its expiry, EXPIRED
    # (its event said ACTIVE, though the centre could serve nothing).
    event = LicenceEvent(
        action, current, after.effective_status(now), actor, reason, now, expires_at
    )
    return replace(after, history=(*licence.history, event))


def renewed_expiry(licence: Licence, now: datetime) -> datetime:
    """The expiry after a renewal: a year on from the old expiry while it has not passed (no
    paid day is lost), a year from now once it has; PreconditionFailed before the window opens.
    """
    expires_at = licence.expires_at
    if expires_at is None or expires_at <= now:
        return a_year_after(now)
    opens = expires_at - RENEWAL_WINDOW
    if now < opens:
        raise PreconditionFailed(
            f"cannot renew yet: the licence expires on {expires_at:%Y-%m-%d} and renewal opens "
            f"on {opens:%Y-%m-%d %H:%M} UTC, {RENEWAL_WINDOW.days} days before"
        )
    return a_year_after(expires_at)


@dataclass(frozen=True)
class Contact:
    """How to reach a centre."""

    phone: str = ""
    email: str = ""
    address: str = ""


@dataclass(frozen=True)
class Center:
    """A licensed Sanad service centre."""

    id: str
    name_ar: str
    name_en: str
    owner_establishment: str
    governorate_code: str
    wilayat_code: str
    omani_staff: int
    total_staff: int
    licence: Licence
    contact: Contact = field(default_factory=Contact)
    offered_service_codes: tuple[str, ...] = ()
    blocked_service_codes: tuple[str, ...] = ()
    revision: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None


class CatalogStatus(StrEnum):
    """Names match sanad.v1.CatalogServiceStatus."""

    ACTIVE = "ACTIVE"
    RETIRED = "RETIRED"


@dataclass(frozen=True)
class CatalogService:
    """One e-service of the catalogue."""

    code: str
    agency_code: str
    name_ar: str
    name_en: str
    fee_baisa: int
    sla_hours: int
    required_documents: tuple[str, ...] = ()
    version: int = 1
    status: CatalogStatus = CatalogStatus.ACTIVE
    revision: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
