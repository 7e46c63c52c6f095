"""A licence transition adds a bounded reason to a bounded history, so even the largest centre
the rules allow encodes below gRPC's 4 MiB message limit with room to spare."""

from datetime import UTC, datetime

import pytest

from sanad.domain.codes import MAX_CODE_LENGTH
from sanad.errors import Invalid, PreconditionFailed
from services.registry.convert import center_to_proto
from services.registry.domain import (
    MAX_LICENCE_EVENTS,
    Center,
    Contact,
    Licence,
    LicenceAction,
    LicenceEvent,
    LicenceStatus,
    transition,
)
from services.registry.validation import (
    MAX_LIST_LENGTH,
    MAX_TEXT_LENGTH,
    validate_reason,
)

NOW = datetime(2025, 3, 1, tzinfo=UTC)
WIDE = "\U0001d538"  # four bytes in UTF-8: the widest a character encodes
S, A = LicenceStatus, LicenceAction


def fields_of(caught: pytest.ExceptionInfo[Invalid]) -> list[str]:
    return [violation.field for violation in caught.value.violations]


@pytest.mark.parametrize("reason", ["", " \t\n"])
def test_a_transition_needs_a_reason(reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        validate_reason(reason)
    assert fields_of(caught) == ["reason"]


def test_a_reason_longer_than_other_free_text_is_refused_without_echoing_it() -> None:
    validate_reason("ن" * MAX_TEXT_LENGTH)
    with pytest.raises(Invalid) as caught:
        validate_reason("r" * 2_500_000)
    assert fields_of(caught) == ["reason"]
    assert len(str(caught.value)) < 200


def events(count: int, reason: str = "r", actor: str = "admin:ops") -> tuple[LicenceEvent, ...]:
    moves = [(A.SUSPEND, S.ACTIVE, S.SUSPENDED), (A.REINSTATE, S.SUSPENDED, S.ACTIVE)]
    return tuple(
        LicenceEvent(*moves[n % 2], actor=actor, reason=reason, time=NOW) for n in range(count)
    )


def test_a_licence_whose_history_is_full_takes_no_further_transition() -> None:
    almost = Licence("LIC-1", status=S.ACTIVE, history=events(MAX_LICENCE_EVENTS - 1))
    full = transition(almost, A.SUSPEND, "admin:ops", "audit", NOW)
    assert len(full.history) == MAX_LICENCE_EVENTS
    with pytest.raises(PreconditionFailed, match="reinstate"):
        transition(full, A.REINSTATE, "admin:ops", "audit", NOW)


def test_the_largest_centre_the_rules_allow_fits_one_message_with_room_to_spare() -> None:
    code, text = WIDE * MAX_CODE_LENGTH, WIDE * MAX_TEXT_LENGTH
    codes = tuple(f"{n:03d}" + code[3:] for n in range(MAX_LIST_LENGTH))
    largest = Center(
        id=code,
        name_ar=text,
        name_en=text,
        owner_establishment=text,
        governorate_code=code,
        wilayat_code=code,
        omani_staff=2**31 - 1,
        total_staff=2**31 - 1,
        contact=Contact(text, text, text),
        offered_service_codes=codes,
        blocked_service_codes=codes,
        licence=Licence(
            code,
            status=S.ACTIVE,
            expires_at=NOW,
            history=events(MAX_LICENCE_EVENTS, reason=text, actor=text),
        ),
        revision=2**62,
        create_time=NOW,
        update_time=NOW,
    )
    # About 2.5 MB: one centre always fits a GetCenter reply or a watch message.
    assert center_to_proto(largest).ByteSize() < 3 * 1024 * 1024


def test_a_licence_whose_history_is_full_can_still_be_cancelled() -> None:
    full = Licence("LIC-1", status=S.SUSPENDED, history=events(MAX_LICENCE_EVENTS))
    cancelled = transition(full, A.CANCEL, "admin:ops", "revoked after repeated suspensions", NOW)
    assert cancelled.status is S.CANCELLED
