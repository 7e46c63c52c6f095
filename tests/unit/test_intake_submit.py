"""Intake.submit with fakes: what the request record keeps; replays the registry now refuses."""

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sanad.amqp.topology import Topology
from sanad.deadline import Deadline
from sanad.domain.submissions import CenterView, Channel, ServiceView, Submission
from sanad.errors import AlreadyExists, Invalid, PreconditionFailed
from sanad.security.identity import DEV_ADMIN
from sanad.v1 import events_pb2
from services.intake.operations import Intake
from services.intake.request_store import RequestStore
from tests.unit.fakes import RecordingPublisher
from tests.unit.test_intake_claims import FakeRequests

SECRET = b"test-civil-secret"
CIVIL = "90817263"
CENTER = CenterView(
    id="C1",
    governorate_code="DA",
    wilayat_code="DA-NIZ",
    licence_status="ACTIVE",
    licence_expires_at=datetime.now(UTC) + timedelta(days=30),
    offered=frozenset({"ROP-VISA"}),
    blocked=frozenset(),
)
SERVICE = ServiceView("ROP-VISA", "ROP", 5000, 48, 1, True)


@dataclass
class FakeSnapshot:
    centers: dict[str, CenterView] = field(default_factory=lambda: {"C1": CENTER})
    services: dict[str, ServiceView] = field(default_factory=lambda: {"ROP-VISA": SERVICE})
    ready: bool = True


class CountingRequests(FakeRequests):
    """FakeRequests that counts reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self.reads += 1
        return await super().find_one(query)


@dataclass
class Setup:
    intake: Intake
    snapshot: FakeSnapshot
    publisher: RecordingPublisher
    requests: CountingRequests


def setup() -> Setup:
    snapshot, publisher, requests = FakeSnapshot(), RecordingPublisher(), CountingRequests()
    store = RequestStore({"intake_requests": requests, "intake_unsent": None, "audit_log": None})  # type: ignore[arg-type]
    intake = Intake(snapshot, publisher, store, Topology("test"), SECRET)
    return Setup(intake, snapshot, publisher, requests)


def submission(**changes: Any) -> Submission:
    base = Submission("r-1", "C1", "ROP-VISA", Channel.COUNTER, 5000, CIVIL)
    return dataclasses.replace(base, **changes)


async def submit(s: Setup, item: Submission) -> Any:
    return await s.intake.submit(item, "centre:abraj@C1", DEV_ADMIN, Deadline(5.0))


async def test_the_stored_request_record_keeps_no_clear_or_unkeyed_civil_number() -> None:
    s = setup()
    await submit(s, submission())
    (record,) = s.requests.docs.values()
    stored = repr(record)
    assert CIVIL not in stored
    parts = ("C1", "ROP-VISA", "COUNTER", "5000", CIVIL)
    unkeyed = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    assert unkeyed not in stored
    assert record["fingerprint"] == submission().fingerprint(SECRET)


def test_the_fingerprint_is_keyed_and_follows_the_payload() -> None:
    assert submission().fingerprint(SECRET) == submission().fingerprint(SECRET)
    assert submission().fingerprint(SECRET) != submission(civil_number="90817264").fingerprint(
        SECRET
    )
    assert submission().fingerprint(SECRET) != submission().fingerprint(b"another-secret")


async def test_a_reused_request_id_with_another_civil_number_already_exists() -> None:
    s = setup()
    await submit(s, submission())
    with pytest.raises(AlreadyExists):
        await submit(s, submission(civil_number="90817264"))


async def test_the_normal_path_reads_no_request_record() -> None:
    s = setup()
    await submit(s, submission())
    await submit(s, submission(request_id="r-2"))
    assert s.requests.reads == 0


@pytest.mark.parametrize(
    "change",
    ["fee", "suspended", "retired"],
)
async def test_a_retry_after_the_registry_changed_gets_its_transaction_id(change: str) -> None:
    s = setup()
    first = await submit(s, submission())
    if change == "fee":
        s.snapshot.services["ROP-VISA"] = dataclasses.replace(SERVICE, fee_baisa=6000)
    elif change == "suspended":
        s.snapshot.centers["C1"] = dataclasses.replace(CENTER, licence_status="SUSPENDED")
    else:
        s.snapshot.services["ROP-VISA"] = dataclasses.replace(SERVICE, active=False)
    again = await submit(s, submission())
    assert again == first
    # Replayed as any replay is: published again (the first publish may not have been
    # confirmed) under the same id, without a carried audit event.
    sent = s.publisher.decoded(events_pb2.TransactionSubmitted)
    assert [e.transaction_id for e in sent] == [first.transaction_id] * 2
    assert sent[1].fee_baisa == 5000
    assert len(s.requests.docs) == 1


async def test_after_a_registry_change_new_or_altered_submissions_are_still_refused() -> None:
    s = setup()
    await submit(s, submission())
    s.snapshot.services["ROP-VISA"] = dataclasses.replace(SERVICE, fee_baisa=6000)
    with pytest.raises(Invalid):
        await submit(s, submission(request_id="r-2"))  # never accepted
    with pytest.raises(Invalid):
        await submit(s, submission(civil_number="90817264"))  # same id, other payload
    with pytest.raises(Invalid):
        await submit(s, submission(request_id=""))  # no id to replay
    s.snapshot.centers["C1"] = dataclasses.replace(CENTER, licence_status="SUSPENDED")
    with pytest.raises(PreconditionFailed):
        await submit(s, submission(request_id="r-3", fee_baisa=6000))
    assert len(s.publisher.sent) == 1
