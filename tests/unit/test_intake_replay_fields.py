"""A replay (the retry of a claim whose publish failed) publishes what the first attempt would
have: the catalogue's and the centre's fields as they were at the claim, with its fee and time,
never a mix of versions."""

import dataclasses

import pytest

from sanad.domain.submissions import request_key
from sanad.errors import Invalid, Unavailable
from sanad.v1 import events_pb2
from tests.unit.test_intake_submit import CENTER, SERVICE, Setup, setup, submission, submit

AS_CLAIMED = {
    "governorate_code": "DA",
    "wilayat_code": "DA-NIZ",
    "agency_code": "ROP",
    "service_version": 1,
    "sla_hours": 48,
}


def published(event: events_pb2.TransactionSubmitted) -> dict[str, object]:
    return {name: getattr(event, name) for name in AS_CLAIMED}


async def claimed_then_refused(s: Setup) -> None:
    """The first attempt: claimed, its publish refused by the broker."""
    s.publisher.down = True
    with pytest.raises(Unavailable):
        await submit(s, submission())
    s.publisher.down = False


async def test_a_replay_after_a_new_catalogue_version_publishes_the_first_ones_fields() -> None:
    s = setup()
    await claimed_then_refused(s)
    # UpdateCatalogService: version 2, another fee (so the retry is refused, and replayed from
    # its claim) and another SLA.
    s.snapshot.services["ROP-VISA"] = dataclasses.replace(
        SERVICE, fee_baisa=6000, version=2, sla_hours=24
    )
    await submit(s, submission())
    (event,) = s.publisher.decoded(events_pb2.TransactionSubmitted)
    assert published(event) == AS_CLAIMED
    assert event.fee_baisa == 5000


async def test_a_replay_the_registry_still_accepts_publishes_the_first_ones_fields() -> None:
    s = setup()
    await claimed_then_refused(s)
    # Version 2 keeps the fee (the retry passes validation and meets its claim); the centre
    # moved to another wilayat.
    s.snapshot.services["ROP-VISA"] = dataclasses.replace(SERVICE, version=2, sla_hours=24)
    s.snapshot.centers["C1"] = dataclasses.replace(CENTER, wilayat_code="DA-BAH")
    await submit(s, submission())
    (event,) = s.publisher.decoded(events_pb2.TransactionSubmitted)
    assert published(event) == AS_CLAIMED


async def test_the_claim_record_keeps_what_a_replay_publishes() -> None:
    s = setup()
    await submit(s, submission())
    (record,) = s.requests.docs.values()
    assert record["registry"] == AS_CLAIMED


async def test_a_claim_recorded_before_these_fields_were_kept_replays_from_the_snapshot() -> None:
    s = setup()
    await claimed_then_refused(s)
    (record,) = s.requests.docs.values()
    del record["registry"]  # as the previous version wrote it
    s.snapshot.services["ROP-VISA"] = dataclasses.replace(SERVICE, version=2, sla_hours=24)
    await submit(s, submission())
    (event,) = s.publisher.decoded(events_pb2.TransactionSubmitted)
    assert (event.service_version, event.sla_hours, event.fee_baisa) == (2, 24, 5000)


async def test_an_id_claimed_before_the_rules_on_its_characters_still_gets_its_transaction() -> (
    None
):
    """A retry of "r-1 " (a spreadsheet's trailing space), claimed before such ids were refused,
    is answered with its transaction, not refused: its caller would mend the id and pay twice.
    A new id of the kind is refused by field."""
    s = setup()
    first = await submit(s, submission())
    (key,) = s.requests.docs
    record = s.requests.docs.pop(key)
    old = request_key("centre:abraj@C1", "r-1 ")
    s.requests.docs[old] = {**record, "_id": old}  # as the earlier version stored it
    again = await submit(s, submission(request_id="r-1 "))
    assert again.transaction_id == first.transaction_id
    with pytest.raises(Invalid) as refused:
        await submit(s, submission(request_id="r-2 "))
    assert [v.field for v in refused.value.violations] == ["request_id"]
