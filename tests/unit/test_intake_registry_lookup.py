"""A submission the snapshot refuses for the registry's state is judged again against the
registry as it is now: a change made a moment ago, which the watch streams have not brought
yet, does not refuse a valid submission (sanad/registry_lookup.py)."""

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from sanad.amqp.topology import Topology
from sanad.domain.submissions import CenterView, ServiceView
from sanad.errors import Invalid, NotFound, PreconditionFailed
from sanad.registry_lookup import RegistryLookup
from sanad.v1 import registry_pb2
from services.intake.operations import Intake
from services.intake.request_store import RequestStore
from tests.unit.fakes import RecordingPublisher
from tests.unit.test_intake_claims import FakeRequests
from tests.unit.test_intake_submit import (
    CENTER,
    SECRET,
    SERVICE,
    FakeSnapshot,
    Setup,
    submission,
    submit,
)

Views = tuple[CenterView | None, ServiceView | None]


@dataclass
class FakeLookup:
    """The registry now: `answer`, or no answer at all (None); counts the calls."""

    answer: Views | None = (CENTER, SERVICE)
    calls: list[tuple[str, str]] = field(default_factory=list)
    callers: list[str] = field(default_factory=list)

    async def current(
        self, center_id: str, service_code: str, timeout_s: float | None, caller: str
    ) -> Views | None:
        self.calls.append((center_id, service_code))
        self.callers.append(caller)
        return self.answer


def setup(snapshot: FakeSnapshot, lookup: FakeLookup) -> Setup:
    publisher, requests = RecordingPublisher(), FakeRequests()
    store = RequestStore({"intake_requests": requests, "intake_unsent": None, "audit_log": None})  # type: ignore[arg-type]
    intake = Intake(snapshot, publisher, store, Topology("test"), SECRET, lookup=lookup)
    return Setup(intake, snapshot, publisher, requests)  # type: ignore[arg-type]


LAGGING = {
    # The registry answered each change; the snapshot still has the state before it.
    "activated a moment ago": FakeSnapshot(
        centers={"C1": dataclasses.replace(CENTER, licence_status="PENDING")}
    ),
    "registered a moment ago": FakeSnapshot(centers={}),
    "offered a moment ago": FakeSnapshot(
        centers={"C1": dataclasses.replace(CENTER, offered=frozenset())}
    ),
    "published a moment ago": FakeSnapshot(services={}),
    "fee raised a moment ago": FakeSnapshot(
        services={"ROP-VISA": dataclasses.replace(SERVICE, fee_baisa=4000)}
    ),
}


@pytest.mark.parametrize("change", LAGGING)
async def test_a_change_the_snapshot_has_not_brought_yet_does_not_refuse(change: str) -> None:
    lookup = FakeLookup()
    s = setup(LAGGING[change], lookup)
    await submit(s, submission())
    assert lookup.calls == [("C1", "ROP-VISA")]
    assert lookup.callers == ["centre:abraj@C1"]  # out of the caller's own share
    assert len(s.publisher.sent) == 1


@pytest.mark.parametrize(
    ("now", "refused", "why"),
    [
        (
            (dataclasses.replace(CENTER, licence_status="SUSPENDED"), SERVICE),
            PreconditionFailed,
            "has no active licence",
        ),
        ((None, SERVICE), NotFound, "centre 'C1' not found"),
        ((CENTER, dataclasses.replace(SERVICE, fee_baisa=6000)), Invalid, "invalid request"),
    ],
)
async def test_the_registry_now_is_the_judge_when_it_differs(
    now: Views, refused: type[Exception], why: str
) -> None:
    # The copy's own refusal is another: "does not offer".
    snapshot = FakeSnapshot(centers={"C1": dataclasses.replace(CENTER, offered=frozenset())})
    s = setup(snapshot, FakeLookup(now))
    with pytest.raises(refused, match=why):
        await submit(s, submission())
    assert s.publisher.sent == []


async def test_the_first_refusal_stands_when_the_registry_agrees_or_does_not_answer() -> None:
    suspended = FakeSnapshot(
        centers={"C1": dataclasses.replace(CENTER, licence_status="SUSPENDED")}
    )
    for answer in ((suspended.centers["C1"], SERVICE), None):
        s = setup(suspended, FakeLookup(answer))
        with pytest.raises(PreconditionFailed, match="has no active licence"):
            await submit(s, submission())
        assert s.publisher.sent == []


async def test_a_submission_bad_in_itself_is_refused_without_asking_the_registry() -> None:
    lookup = FakeLookup()
    s = setup(FakeSnapshot(centers={}), lookup)
    with pytest.raises(Invalid):
        await submit(s, submission(civil_number="12"))
    assert lookup.calls == []


class FakeRegistry:
    """The registry's two reads, answering `centers` and `services` (by default a bare centre
    or service of the id asked) after `delay_s`; counts calls."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self.centers: dict[str, registry_pb2.Center] = {}

    async def GetCenter(self, request: Any, **_: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        center = self.centers.get(request.id, registry_pb2.Center(id=request.id))
        return registry_pb2.GetCenterResponse(center=center)

    async def GetCatalogService(self, request: Any, **_: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return registry_pb2.GetCatalogServiceResponse(
            service=registry_pb2.CatalogService(code=request.code)
        )


async def test_refused_submissions_ask_the_registry_once_per_centre_and_service_at_a_time() -> None:
    # A caller may send refused submissions as fast as its rate allows: those of one centre
    # and service share one question while it runs.
    registry = FakeRegistry(delay_s=0.01)
    lookup = RegistryLookup(registry, clock=lambda: 0.0)
    answers = await asyncio.gather(
        *(lookup.current("C1", "S", 1.0, "centre:desk@C1") for _ in range(20))
    )
    assert registry.calls == 2
    assert {answer[0].id for answer in answers if answer and answer[0]} == {"C1"}


async def test_no_answer_is_kept_so_a_change_right_after_one_is_seen() -> None:
    # Refused "does not offer" (the registry agrees), the client offers the service and submits
    # again at once: judged against the registry after the offer, not the answer before it.
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: 0.0)
    first = await lookup.current("C1", "S", 1.0, "centre:desk@C1")
    assert first is not None
    assert first[0] is not None
    assert first[0].offered == frozenset()
    registry.centers["C1"] = registry_pb2.Center(id="C1", offered_service_codes=["S"])
    second = await lookup.current("C1", "S", 1.0, "centre:desk@C1")
    assert second is not None
    assert second[0] is not None
    assert second[0].offered == frozenset({"S"})
    assert registry.calls == 4


async def test_beyond_its_rate_the_process_asks_nothing_and_the_refusal_stands() -> None:
    registry = FakeRegistry()
    lookup = RegistryLookup(registry, clock=lambda: 0.0, rate_per_s=3)
    answers = [await lookup.current(f"C{n}", "S", 1.0, "centre:desk@C1") for n in range(3)]
    assert registry.calls == 3  # C0, S and C1
    assert answers[0] is not None
    assert answers[1:] == [None, None]


async def test_an_answer_this_build_cannot_read_leaves_the_refusal_standing_not_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A licence status a newer registry added: converting it fails. Before, the ValueError
    # reached the caller as INTERNAL (and dead-lettered a good batch in the batch worker).
    registry = FakeRegistry()
    newer = registry_pb2.Center(id="C1")
    newer.licence.status = 42  # type: ignore[assignment]
    registry.centers["C1"] = newer
    lookup = RegistryLookup(registry, clock=lambda: 0.0)

    assert await lookup.current("C1", "S", 1.0, "centre:desk@C1") is None
    assert "could not be used" in caplog.text
