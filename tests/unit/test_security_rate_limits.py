"""A caller over its rate gets RESOURCE_EXHAUSTED with RetryInfo; other callers are unaffected.
Calls that fail authentication are charged too, and a flood of refusals is audited in bounds."""

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sanad import errors
from sanad.deadline import Deadline
from sanad.devstack import certs
from sanad.domain.submissions import Submission
from sanad.rpc.server import Registration, start_server
from sanad.security.admission import (
    REFUSALS_AUDITED_BURST,
    REFUSALS_AUDITED_PER_S,
    UNKNOWN_CALLER,
)
from sanad.security.authenticate import source
from sanad.security.credentials import issue_token
from sanad.security.identity import Identity, Role
from sanad.security.interceptor import _note
from sanad.settings import ServerSettings
from sanad.v1 import intake_pb2, intake_pb2_grpc
from sanad.v1.intake_pb2_grpc import add_IntakeServiceServicer_to_server
from services.intake.app import SERVICE_NAME
from services.intake.operations import Accepted
from services.intake.servicer import IntakeServicer
from services.intake.streaming import StreamLimits
from tests.unit.security_echo import MemoryAudit, call, every_method, full_name, start_echo

LIST_AGENCIES = next(m for m in every_method() if m.name == "ListAgencies")


async def test_a_burst_over_the_limit_is_refused_with_retry_information() -> None:
    # One token a minute: the three calls fit in the window however slow the machine (at 0.5
    # a second a third call more than a second late found a token again).
    settings = ServerSettings(grpc_host="127.0.0.1", rate_limit_per_s=1 / 60, rate_limit_burst=2)
    running = await start_echo(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            method = channel.unary_unary(full_name(LIST_AGENCIES))
            await method(b"", timeout=5)
            await method(b"", timeout=5)
            try:
                await method(b"", timeout=5)
            except grpc.aio.AioRpcError as error:
                refused = error
            else:
                raise AssertionError("third call within the burst window was allowed")
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(refused)
        assert status is not None
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert 30.0 < retry.retry_delay.ToTimedelta().total_seconds() <= 60.0
    finally:
        await running.stop(0)


class AcceptingIntake:
    """Accepts every submission at once."""

    async def submit(
        self, submission: Submission, caller: str, identity: Identity, deadline: Deadline
    ) -> Accepted:
        return Accepted(f"T-{submission.request_id}", datetime(2024, 6, 1, tzinfo=UTC))


@asynccontextmanager
async def accepting_intake(audit: MemoryAudit | None = None) -> AsyncIterator[str]:
    """An intake server, rate 3 at once then next to nothing, that accepts every submission;
    its address."""
    settings = ServerSettings(grpc_host="127.0.0.1", rate_limit_per_s=0.01, rate_limit_burst=3)
    servicer = IntakeServicer(
        AcceptingIntake(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        StreamLimits(max_inflight=4, max_items=100),
        watch_poll_s=1.0,
    )
    running = await start_server(
        settings,
        0,
        [Registration(SERVICE_NAME, partial(add_IntakeServiceServicer_to_server, servicer))],
        checks={},
        audit_log=audit,  # type: ignore[arg-type]
    )
    try:
        yield f"127.0.0.1:{running.port}"
    finally:
        await running.stop(0)


def six_items() -> list[intake_pb2.SubmitTransactionsRequest]:
    return [
        intake_pb2.SubmitTransactionsRequest(
            transaction=intake_pb2.SubmitTransactionRequest(request_id=str(n), center_id="C1")
        )
        for n in range(6)
    ]


async def test_each_streamed_submission_is_charged_to_the_callers_rate() -> None:
    items = six_items()
    async with accepting_intake() as address, grpc.aio.insecure_channel(address) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        answers = [a async for a in stub.SubmitTransactions(iter(items), timeout=5)]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitTransactions(iter(items[:1]), timeout=5).read()
    # The call's own token pays for the first item; the burst of 3 covers two more.
    assert [a.index for a in answers] == list(range(6))
    assert [a.transaction_id for a in answers[:3]] == ["T-0", "T-1", "T-2"]
    assert [a.error_code for a in answers] == [""] * 3 + ["RESOURCE_EXHAUSTED"] * 3
    assert not any(a.transaction_id for a in answers[3:])
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_streams_event_counts_its_items_by_outcome_those_over_the_rate_among_them() -> None:
    audit = MemoryAudit()
    async with accepting_intake(audit) as address, grpc.aio.insecure_channel(address) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        answers = [a async for a in stub.SubmitTransactions(iter(six_items()), timeout=5)]
    assert [a.error_code for a in answers] == [""] * 3 + ["RESOURCE_EXHAUSTED"] * 3
    # Each submitted item has an event of its own; the items over the rate only their count.
    *accepted, stream = audit.events
    assert [e.target["request_id"] for e in accepted] == ["0", "1", "2"]
    assert all(e.item_outcomes == {} for e in accepted)
    assert (stream.outcome, stream.target) == ("OK", {})
    assert stream.item_outcomes == {"OK": 3, "RESOURCE_EXHAUSTED": 3}


@pytest.mark.parametrize("name", ["TransitionLicence", "SubmitTransactions"])
async def test_a_rate_limited_call_is_audited_with_its_authenticated_caller(
    pki: Path, name: str
) -> None:
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        rate_limit_per_s=0.01,
        rate_limit_burst=1,
    )
    identity = certs.EXAMPLES["ministry-mociip"]
    key = (pki / "jwt-signing.key").read_bytes()
    token = issue_token(key, identity, "sanad-mesh", "sanad-mesh", 600)
    metadata = (("authorization", f"Bearer {token}"),)
    method = next(m for m in every_method() if m.name == name)
    audit = MemoryAudit()
    running = await start_echo(settings, audit)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            codes = [await call(channel, method, b"", metadata) for _ in range(2)]
    finally:
        await running.stop(0)
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED]
    refused = audit.events[-1]
    assert refused.outcome == "RESOURCE_EXHAUSTED"
    assert (refused.subject, refused.role, refused.agency_code) == (
        "mociip-licensing",
        "ministry",
        "MOCIIP",
    )


REGISTER = next(m for m in every_method() if m.name == "RegisterCenter")


def limited_settings(pki: Path, **extra: object) -> ServerSettings:
    """Auth required, bearer tokens verified, and a burst of 2 that refills once a minute."""
    return ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
        rate_limit_per_s=1 / 60,
        rate_limit_burst=2,
        **extra,  # type: ignore[arg-type]
    )


def bearer_of(pki: Path, name: str) -> tuple[tuple[str, str], ...]:
    key = (pki / "jwt-signing.key").read_bytes()
    token = issue_token(key, certs.EXAMPLES[name], "sanad-mesh", "sanad-mesh", 600)
    return (("authorization", f"Bearer {token}"),)


async def test_calls_with_a_bad_credential_are_charged_to_their_peer(pki: Path) -> None:
    running = await start_echo(limited_settings(pki))
    bad = (("authorization", "Bearer x.y.z"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            codes = [await call(channel, LIST_AGENCIES, b"", bad) for _ in range(5)]
            # Nor may it call with no credential at all meanwhile: the same peer.
            bare = await call(channel, LIST_AGENCIES, b"")
            # A caller that authenticates is charged to itself, not to the address it shares.
            valid = await call(channel, LIST_AGENCIES, b"", bearer_of(pki, "admin"))
    finally:
        await running.stop(0)
    unauthenticated, exhausted = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED
    assert codes == [unauthenticated] * 2 + [exhausted] * 3
    assert bare == exhausted
    assert valid == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("token", "first", "subject"),
    [
        ("", grpc.StatusCode.UNAUTHENTICATED, "(unauthenticated)"),
        ("operator", grpc.StatusCode.PERMISSION_DENIED, "dakhiliyah-operator"),
    ],
    ids=["bad token", "operator"],
)
async def test_a_flood_of_refused_calls_writes_a_burst_of_events_then_one_a_second(
    pki: Path, token: str, first: grpc.StatusCode, subject: str
) -> None:
    audit = MemoryAudit()
    running = await start_echo(limited_settings(pki), audit)
    metadata = bearer_of(pki, token) if token else (("authorization", "Bearer x.y.z"),)
    started = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            codes = [await call(channel, REGISTER, b"", metadata) for _ in range(200)]
    finally:
        await running.stop(0)
    elapsed = time.monotonic() - started
    assert codes == [first] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 198
    # Both calls within the rate, then a burst of the refusals and at most one a second after.
    outcomes = [event.outcome for event in audit.events]
    assert outcomes[:2] == [first.name] * 2
    refused = outcomes[2:]
    assert set(refused) == {"RESOURCE_EXHAUSTED"}
    allowed = REFUSALS_AUDITED_BURST + math.ceil(elapsed * REFUSALS_AUDITED_PER_S)
    assert REFUSALS_AUDITED_BURST <= len(refused) <= allowed
    assert {event.subject for event in audit.events} == {subject}


class PeerOnly:
    """A call's context with no client certificate, from `peer`."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(
    ("peer", "charged"),
    [
        ("ipv4:10.0.0.7:51234", "peer:ipv4:10.0.0.7"),
        ("ipv6:%5B::1%5D:40356", "peer:ipv6:%5B::1%5D"),
        ("ipv6:[fe80::1]:40356", "peer:ipv6:[fe80::1]"),
        ("unix:/run/sanad.sock", "peer:unix:/run/sanad.sock"),
    ],
)
def test_a_call_without_a_certificate_is_charged_to_its_peers_address_without_the_port(
    peer: str, charged: str
) -> None:
    assert source(PeerOnly(peer)) == charged


class WithCertificate(PeerOnly):
    """A call's context whose client certificate TLS verified."""

    def __init__(self, peer: str, certificate: bytes) -> None:
        super().__init__(peer)
        self.certificate = certificate

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self.certificate]}


def test_a_refusal_before_the_caller_is_identified_notes_where_it_came_from(pki: Path) -> None:
    """The trail's event of a call whose credential failed names its certificate's identity (a
    bad bearer token came with a good certificate), else its peer's address."""
    certificate = (pki / "ministry-rop.pem").read_bytes()
    refused = errors.Unauthenticated("bad token")
    assert _note(refused, UNKNOWN_CALLER, WithCertificate("ipv4:10.0.0.7:1", certificate)) == (
        "unauthenticated, from ministry:rop-systems@ROP"
    )
    assert _note(refused, UNKNOWN_CALLER, PeerOnly("ipv4:10.0.0.7:51234")) == (
        "unauthenticated, from peer:ipv4:10.0.0.7"
    )
    # An identified caller's refusal notes nothing of the kind.
    identified = Identity("rop-systems", Role.MINISTRY, agency_code="ROP")
    assert _note(errors.PermissionDenied("no"), identified, PeerOnly("ipv4:10.0.0.7:1")) == ""


async def test_reads_refused_for_the_rate_spend_nothing_of_the_audited_refusals(pki: Path) -> None:
    # Reads are never audited, yet their refusals took the caller's budget for audited ones:
    # after 25 refused ListCenters, a ministry's refused RegisterCenters left no event at all
    # (audit helper's repro).
    audit = MemoryAudit()
    running = await start_echo(limited_settings(pki), audit)
    metadata = bearer_of(pki, "ministry-mociip")
    reads = next(m for m in every_method() if m.name == "ListCenters")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            read_codes = [await call(channel, reads, b"", metadata) for _ in range(25)]
            codes = [await call(channel, REGISTER, b"", metadata) for _ in range(5)]
    finally:
        await running.stop(0)
    assert read_codes == [grpc.StatusCode.OK] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 23
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
    assert [event.rpc.rsplit("/", 1)[-1] for event in audit.events] == ["RegisterCenter"] * 5
    assert {event.outcome for event in audit.events} == {"RESOURCE_EXHAUSTED"}
