"""Licence lifecycle rules: every legal and illegal transition, renewal and expiry."""

from datetime import UTC, datetime, timedelta

import pytest

from sanad.errors import PreconditionFailed
from services.registry.domain import (
    RENEWAL_WINDOW,
    Licence,
    LicenceAction,
    LicenceStatus,
    a_year_after,
    transition,
)

NOW = datetime(2025, 3, 1, tzinfo=UTC)
S, A = LicenceStatus, LicenceAction
LEGAL = {
    (S.APPLIED, A.APPROVE): S.INITIALLY_APPROVED,
    (S.INITIALLY_APPROVED, A.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.REINSTATE): S.ACTIVE,
    (S.ACTIVE, A.RENEW): S.ACTIVE,
    (S.EXPIRED, A.RENEW): S.ACTIVE,
    **{(status, A.CANCEL): S.CANCELLED for status in S if status is not S.CANCELLED},
}
EVERY_PAIR = [(status, action) for status in S for action in A]


def licence_in(status: LicenceStatus) -> Licence:
    expires = {S.ACTIVE: NOW + timedelta(days=30), S.EXPIRED: NOW - timedelta(days=1)}
    return Licence("LIC-1", status=status, expires_at=expires.get(status))


@pytest.mark.parametrize(("status", "action"), [p for p in EVERY_PAIR if p in LEGAL])
def test_a_legal_transition_moves_the_licence_and_records_it(
    status: LicenceStatus, action: LicenceAction
) -> None:
    moved = transition(licence_in(status), action, "ministry", "because", NOW)
    assert moved.status is LEGAL[(status, action)]
    event = moved.history[-1]
    assert (event.action, event.from_status, event.to_status) == (action, status, moved.status)
    assert (event.actor, event.reason, event.time) == ("ministry", "because", NOW)


@pytest.mark.parametrize(("status", "action"), [p for p in EVERY_PAIR if p not in LEGAL])
def test_an_illegal_transition_is_refused_and_changes_nothing(
    status: LicenceStatus, action: LicenceAction
) -> None:
    licence = licence_in(status)
    with pytest.raises(PreconditionFailed):
        transition(licence, action, "ministry", "", NOW)


def test_activation_starts_a_one_year_term() -> None:
    active = transition(licence_in(S.INITIALLY_APPROVED), A.ACTIVATE, "m", "", NOW)
    assert active.expires_at == a_year_after(NOW)


def test_renewing_an_unexpired_licence_extends_from_its_expiry_not_from_today() -> None:
    licence = licence_in(S.ACTIVE)
    assert licence.expires_at is not None
    renewed = transition(licence, A.RENEW, "m", "", NOW)
    assert renewed.expires_at == a_year_after(licence.expires_at)


def test_an_active_licence_cannot_be_renewed_before_its_renewal_window_opens() -> None:
    licence = Licence("LIC-1", status=S.ACTIVE, expires_at=datetime(2025, 12, 1, tzinfo=UTC))
    with pytest.raises(PreconditionFailed) as refused:
        transition(licence, A.RENEW, "m", "", NOW)
    assert "expires on 2025-12-01" in refused.value.message
    assert "renewal opens on 2025-09-02" in refused.value.message


def test_renewal_opens_ninety_days_before_the_expiry() -> None:
    expires = NOW + RENEWAL_WINDOW
    licence = Licence("LIC-1", status=S.ACTIVE, expires_at=expires)
    renewed = transition(licence, A.RENEW, "m", "", NOW)
    assert renewed.expires_at == a_year_after(expires)
    with pytest.raises(PreconditionFailed):
        transition(licence, A.RENEW, "m", "", NOW - timedelta(seconds=1))


def test_a_renewal_sent_twice_adds_one_year_not_two() -> None:
    licence = licence_in(S.ACTIVE)
    renewed = transition(licence, A.RENEW, "m", "", NOW)
    with pytest.raises(PreconditionFailed, match="cannot renew yet"):
        transition(renewed, A.RENEW, "m", "", NOW)
    lapsed = Licence("LIC-1", status=S.ACTIVE, expires_at=NOW - timedelta(days=10))
    renewed = transition(lapsed, A.RENEW, "m", "", NOW)
    with pytest.raises(PreconditionFailed, match="cannot renew yet"):
        transition(renewed, A.RENEW, "m", "", NOW + timedelta(minutes=1))


def test_renewing_a_lapsed_licence_extends_from_today() -> None:
    lapsed = Licence("LIC-1", status=S.ACTIVE, expires_at=NOW - timedelta(days=10))
    renewed = transition(lapsed, A.RENEW, "m", "", NOW)
    assert renewed.expires_at == a_year_after(NOW)
    assert renewed.history[-1].from_status is S.EXPIRED


def test_an_active_licence_past_its_expiry_reads_expired_and_cannot_serve() -> None:
    licence = Licence("LIC-1", status=S.ACTIVE, expires_at=NOW)
    assert licence.effective_status(NOW - timedelta(seconds=1)) is S.ACTIVE
    assert licence.is_serving(NOW - timedelta(seconds=1))
    assert licence.effective_status(NOW) is S.EXPIRED
    assert not licence.is_serving(NOW)


def test_an_expired_licence_cannot_be_suspended() -> None:
    lapsed = Licence("LIC-1", status=S.ACTIVE, expires_at=NOW - timedelta(days=1))
    with pytest.raises(PreconditionFailed, match="expired"):
        transition(lapsed, A.SUSPEND, "m", "", NOW)


def test_a_suspended_licence_past_its_expiry_renews_only_once_reinstated() -> None:
    lapsed = NOW - timedelta(days=10)
    suspended = Licence("LIC-1", status=S.SUSPENDED, expires_at=lapsed)
    assert suspended.effective_status(NOW) is S.SUSPENDED
    with pytest.raises(PreconditionFailed, match="cannot renew a licence that is suspended"):
        transition(suspended, A.RENEW, "m", "", NOW)

    reinstated = transition(suspended, A.REINSTATE, "m", "inspection passed", NOW)
    assert reinstated.effective_status(NOW) is S.EXPIRED
    assert not reinstated.is_serving(NOW)

    renewed = transition(reinstated, A.RENEW, "m", "", NOW)
    assert renewed.is_serving(NOW)
    assert renewed.expires_at == a_year_after(NOW)


def test_a_licence_runs_a_calendar_year_across_a_29_february() -> None:
    # 365 days from 1 March 2027 ended on 29 February 2028, a day short, and a renewal in the
    # window carried the drift on to 28 February 2029 (registry hunt).
    activated = datetime(2027, 3, 1, 6, tzinfo=UTC)
    licence = transition(
        Licence("L-1", LicenceStatus.INITIALLY_APPROVED),
        LicenceAction.ACTIVATE,
        "ministry",
        "inspection passed",
        activated,
    )
    assert licence.expires_at == datetime(2028, 3, 1, 6, tzinfo=UTC)
    renewed = transition(
        licence, LicenceAction.RENEW, "ministry", "fees paid", datetime(2028, 2, 1, tzinfo=UTC)
    )
    assert renewed.expires_at == datetime(2029, 3, 1, 6, tzinfo=UTC)
    assert a_year_after(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2029, 2, 28, tzinfo=UTC)


def test_a_reinstatement_past_the_expiry_records_the_status_it_leaves() -> None:
    # It recorded SUSPENDED -> ACTIVE while the licence read EXPIRED (registry hunt).
    start = datetime(2026, 1, 10, tzinfo=UTC)
    active = transition(
        Licence("L-1", LicenceStatus.INITIALLY_APPROVED), LicenceAction.ACTIVATE, "m", "ok", start
    )
    suspended = transition(active, LicenceAction.SUSPEND, "m", "inspection", start)
    late = a_year_after(start) + timedelta(days=3)
    reinstated = transition(suspended, LicenceAction.REINSTATE, "m", "cleared", late)
    event = reinstated.history[-1]
    assert (event.from_status, event.to_status) == (LicenceStatus.SUSPENDED, LicenceStatus.EXPIRED)
    assert reinstated.effective_status(late) is LicenceStatus.EXPIRED
    renewed = transition(reinstated, LicenceAction.RENEW, "m", "fees paid", late)
    assert renewed.history[-1].to_status is LicenceStatus.ACTIVE
