"""Each licence event records the expiry the licence holds after it, and keeps it when stored
and served; events stored before it was kept read without one."""

from datetime import UTC, datetime, timedelta

from services.registry.convert import center_to_proto
from services.registry.documents import center_from_doc, center_to_doc
from services.registry.domain import (
    Center,
    Licence,
    LicenceAction,
    a_year_after,
    transition,
)

START = datetime(2022, 3, 1, tzinfo=UTC)
A = LicenceAction


def lived(*steps: tuple[LicenceAction, datetime]) -> Licence:
    """A licence applied for, then moved through each (action, when)."""
    licence = Licence("LIC-1")
    for action, when in steps:
        licence = transition(licence, action, "ministry", "because", when)
    return licence


def centre(licence: Licence) -> Center:
    return Center("C-1", "مركز", "Centre", "مؤسسة", "DA", "DA-NIZ", 2, 3, licence)


def test_each_event_records_the_expiry_the_licence_holds_after_it() -> None:
    late = a_year_after(START) + timedelta(days=400)  # renewed long after it lapsed
    licence = lived(
        (A.APPROVE, START - timedelta(days=1)),
        (A.ACTIVATE, START),
        (A.SUSPEND, START + timedelta(days=10)),
        (A.REINSTATE, START + timedelta(days=20)),
        (A.RENEW, late),
    )
    assert [e.expires_at for e in licence.history] == [
        None,  # approved: no term yet
        a_year_after(START),  # set by the activation
        a_year_after(START),  # kept by the suspension
        a_year_after(START),  # kept by the reinstatement
        a_year_after(late),  # set by the late renewal: a year from the renewal
    ]
    assert licence.history[-1].expires_at == licence.expires_at


def test_the_stored_centre_keeps_each_events_expiry() -> None:
    licence = lived((A.APPROVE, START), (A.ACTIVATE, START))
    stored = center_from_doc(center_to_doc(centre(licence)))
    assert stored.licence.history == licence.history


def test_an_event_stored_before_events_kept_their_expiry_reads_without_one() -> None:
    doc = center_to_doc(centre(lived((A.APPROVE, START), (A.ACTIVATE, START))))
    for event in doc["licence"]["history"]:
        del event["expires_at"]
    stored = center_from_doc(doc)
    assert [e.expires_at for e in stored.licence.history] == [None, None]
    assert not center_to_proto(stored).licence.history[1].HasField("expires_at")


def test_the_served_centre_carries_each_events_expiry() -> None:
    served = center_to_proto(centre(lived((A.APPROVE, START), (A.ACTIVATE, START))))
    approved, activated = served.licence.history
    assert not approved.HasField("expires_at")
    assert activated.expires_at.ToDatetime(tzinfo=UTC) == a_year_after(START)
