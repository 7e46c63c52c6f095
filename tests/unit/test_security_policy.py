"""Every row of the policy table, allowed and refused, through a real server and interceptor."""

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad.devstack import certs
from sanad.security import policy
from sanad.security.credentials import issue_token
from sanad.security.identity import Identity, Role
from sanad.settings import ServerSettings
from tests.unit.security_echo import (
    MemoryAudit,
    call,
    every_method,
    full_name,
    request_class,
    start_echo,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
IDENTITIES = {
    **certs.EXAMPLES,
    "service": Identity("intake", Role.SERVICE),
}
ALL = set(IDENTITIES)
REGISTRY_READERS = {"admin", "ministry-mociip", "ministry-rop", "centre", "batch", "service"}
LICENSING = {"admin", "ministry-mociip"}
CATALOGUE_WRITERS = {"admin", "ministry-mociip", "ministry-rop"}  # for a ROP service
TRANSACTIONS = {"admin", "ministry-mociip", "ministry-rop", "centre", "batch"}
MINISTRIES = {"admin", "ministry-mociip", "ministry-rop"}
STATISTICS = {"admin", "operator", "ministry-mociip", "ministry-rop"}

# The policy written out by hand: RPC -> who may call it (with the requests built below).
EXPECTED = {
    "RegistryService/ListGovernorates": REGISTRY_READERS,
    "RegistryService/ListWilayats": REGISTRY_READERS,
    "RegistryService/ListAgencies": REGISTRY_READERS,
    "RegistryService/GetCenter": REGISTRY_READERS,
    "RegistryService/ListCenters": REGISTRY_READERS,
    "RegistryService/GetCatalogService": REGISTRY_READERS,
    "RegistryService/ListCatalogServices": REGISTRY_READERS,
    "RegistryService/WatchCatalog": REGISTRY_READERS,
    "RegistryService/WatchCenters": REGISTRY_READERS,
    "RegistryService/RegisterCenter": LICENSING,
    "RegistryService/UpdateCenter": LICENSING,
    "RegistryService/TransitionLicence": LICENSING,
    "RegistryService/SetCenterServices": LICENSING,
    "RegistryService/AddCatalogService": CATALOGUE_WRITERS,
    "RegistryService/UpdateCatalogService": CATALOGUE_WRITERS,
    "RegistryService/RetireCatalogService": LICENSING,
    "IntakeService/SubmitTransaction": TRANSACTIONS,
    "IntakeService/SubmitTransactions": TRANSACTIONS,
    "IntakeService/GetTransaction": TRANSACTIONS,
    "IntakeService/ListTransactions": TRANSACTIONS,
    "IntakeService/WatchTransaction": TRANSACTIONS,
    "IntakeService/UpdateTransactionStatus": MINISTRIES,
    "IntakeService/CancelTransaction": MINISTRIES | {"centre"},
    "IntakeService/RateTransaction": {"admin", "centre"},
    "MetricsService/GetCenterStats": STATISTICS | {"centre"},
    "MetricsService/GetWilayatStats": STATISTICS,
    "MetricsService/GetGovernorateReport": STATISTICS,
    "MetricsService/GetAwardLeaderboard": STATISTICS | {"centre"},
    "AuditService/ListAuditEvents": {"admin"},
}
ROWS = [(m, name) for m in every_method() for name in sorted(ALL)]


@pytest.fixture(scope="module")
def tokens(pki: Path) -> dict[str, str]:
    key = (pki / "jwt-signing.key").read_bytes()
    return {
        name: issue_token(key, identity, "sanad-mesh", "sanad-mesh", 600)
        for name, identity in IDENTITIES.items()
    }


@pytest.fixture(scope="module")
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture(scope="module")
async def channel(pki: Path, audit: MemoryAudit) -> AsyncIterator[grpc.aio.Channel]:
    settings = ServerSettings(
        grpc_host="127.0.0.1",
        auth_mode="required",
        auth_jwt_public_key_file=str(pki / "jwt-signing.pub.pem"),
    )
    running = await start_echo(settings, audit)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened
    await running.stop(0)


def request_for(method_name: str, cls: type) -> bytes:
    request = cls()
    if method_name in ("AddCatalogService", "UpdateCatalogService"):
        request.service.agency_code = "ROP"
        request.service.code = "ROP-VISA"
    if method_name == "GetCenterStats":
        request.center_id = certs.EXAMPLE_CENTER
    return bytes(request.SerializeToString())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def test_the_table_covers_every_rpc_in_the_protos_and_nothing_else() -> None:
    declared = {full_name(m) for m in every_method()}
    assert set(policy.POLICY) == declared
    assert {f"/sanad.v1.{k}" for k in EXPECTED} == declared


@pytest.mark.parametrize(("method", "who"), ROWS, ids=[f"{m.name}-{w}" for m, w in ROWS])
async def test_policy_row(
    channel: grpc.aio.Channel, tokens: dict[str, str], method: object, who: str
) -> None:
    key = f"{method.containing_service.name}/{method.name}"  # type: ignore[attr-defined]
    request = request_for(method.name, request_class(method))  # type: ignore[attr-defined]
    code = await call(channel, method, request, bearer(tokens[who]))  # type: ignore[arg-type]
    expected = grpc.StatusCode.OK if who in EXPECTED[key] else grpc.StatusCode.PERMISSION_DENIED
    assert code == expected


async def test_a_ministry_may_not_add_a_service_of_another_agency(
    channel: grpc.aio.Channel, tokens: dict[str, str]
) -> None:
    method = next(m for m in every_method() if m.name == "AddCatalogService")
    request = request_class(method)()
    request.service.agency_code = "MOH"
    code = await call(channel, method, request.SerializeToString(), bearer(tokens["ministry-rop"]))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_a_centre_may_not_read_another_centres_statistics(
    channel: grpc.aio.Channel, tokens: dict[str, str]
) -> None:
    method = next(m for m in every_method() if m.name == "GetCenterStats")
    request = request_class(method)(center_id="someone-else")
    code = await call(channel, method, request.SerializeToString(), bearer(tokens["centre"]))
    assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", list(every_method()), ids=lambda m: m.name)
async def test_a_call_without_credentials_is_unauthenticated(
    channel: grpc.aio.Channel, method: object
) -> None:
    code = await call(channel, method, b"")  # type: ignore[arg-type]
    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "header", ["Bearer not-a-jwt", "Basic YWRtaW46YWRtaW4=", "Bearer ", "bearer x.y.z"]
)
async def test_a_bad_credential_is_unauthenticated(channel: grpc.aio.Channel, header: str) -> None:
    method = next(m for m in every_method() if m.name == "ListAgencies")
    code = await call(channel, method, b"", (("authorization", header),))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_health_needs_no_credential(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status in (SERVING, NOT_SERVING)  # answered, not refused


async def test_state_changing_calls_are_audited_with_identity_target_and_outcome(
    channel: grpc.aio.Channel, tokens: dict[str, str], audit: MemoryAudit
) -> None:
    method = next(m for m in every_method() if m.name == "TransitionLicence")
    request = request_class(method)(center_id="c-42", action=2, reason="ok").SerializeToString()
    target = {"center_id": "c-42", "action": "LICENCE_ACTION_ACTIVATE"}
    audit.events.clear()
    await call(channel, method, request, bearer(tokens["ministry-mociip"]))
    await call(channel, method, request, bearer(tokens["operator"]))
    await call(channel, method, request, (("x-request-id", "req-7"),))
    reads = next(m for m in every_method() if m.name == "GetCenter")
    await call(channel, reads, b"", bearer(tokens["admin"]))
    outcomes = [(e.subject, e.role, e.outcome, e.target) for e in audit.events]
    assert outcomes == [
        ("mociip-licensing", "ministry", "OK", target),
        ("dakhiliyah-operator", "operator", "PERMISSION_DENIED", target),
        # Where it came from, for the trail: no certificate, so the peer's address.
        (
            "(unauthenticated)",
            "",
            "UNAUTHENTICATED",
            {**target, "audit_note": "unauthenticated, from peer:ipv4:127.0.0.1"},
        ),
    ]
    assert audit.events[0].agency_code == "MOCIIP"
    assert audit.events[2].request_id == "req-7"
    assert {e.rpc for e in audit.events} == {"/sanad.v1.RegistryService/TransitionLicence"}
