"""Every RPC driven with random and boundary values gets only expected codes; all stay SERVING."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanad.rpc.status import field_violations
from sanad.v1 import audit_pb2, intake_pb2, metrics_pb2, registry_pb2
from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.metrics.app import build_app as build_metrics
from services.metrics.settings import MetricsSettings
from services.registry.app import build_app as build_registry
from services.registry.settings import RegistrySettings
from tests.integration.bad_input_strategies import requests
from tests.integration.conftest import eventually
from tests.integration.metrics_support import build_rollup_indexes

pytestmark = pytest.mark.integration

EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    # The registry's: a watch from past its latest revision; a stale expected_revision.
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ABORTED,
}
# A watch stream runs until its deadline; ending it that way is expected.
STREAM_ENDINGS = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
SERVICES = {
    "registry": [registry_pb2, audit_pb2],
    "intake": [intake_pb2],
    "metrics": [metrics_pb2],
}
METHODS = [
    (name, method)
    for name, files in SERVICES.items()
    for file in files
    for service in file.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
# protobuf's Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
TIMESTAMP_SECONDS = (-62135596800, 253402300799)
TIMESTAMP_NANOS = (0, 999_999_999)
# What an answer must be, given the request and the code and field violations it got.
Check = Callable[[MethodDescriptor, Any, grpc.StatusCode, list[tuple[str, str]]], None]


@pytest.fixture
async def ports(
    mongo_url: str, database_name: str, amqp_url: str, amqp_prefix: str
) -> AsyncIterator[dict[str, int]]:
    common: dict[str, Any] = {
        "mongo_url": mongo_url,
        "mongo_database": database_name,
        "amqp_url": amqp_url,
        "amqp_prefix": amqp_prefix,
        "grpc_host": "127.0.0.1",
        "shutdown_grace_s": 1.0,
    }
    await build_rollup_indexes(mongo_url, database_name)  # metrics is SERVING once they exist
    registry = build_registry(RegistrySettings(**common))
    found = {"registry": await registry.start(0)}
    metrics = build_metrics(
        MetricsSettings(**common, registry_target=f"127.0.0.1:{found['registry']}")
    )
    found["metrics"] = await metrics.start(0)
    intake = build_intake(
        IntakeSettings(**common, registry_target=f"127.0.0.1:{found['registry']}")
    )
    found["intake"] = await intake.start(0)
    apps = (intake, metrics, registry)
    for app in apps:
        assert app.server is not None
        await eventually(app.server.health.check_once, within_s=15)
    yield found
    for app in apps:
        await app.stop()


def _invoke(
    channel: grpc.Channel, method: MethodDescriptor, requests_: list[Any], check: Check | None
) -> None:
    name = f"/{method.containing_service.full_name}/{method.name}"
    code, details, violations = _call(channel, name, method, requests_)
    allowed = EXPECTED | (STREAM_ENDINGS if method.server_streaming else set())
    assert code in allowed, f"{name} answered {code}: {details}"
    assert "Traceback" not in details, f"{name} answered a stack trace: {details}"
    if code is grpc.StatusCode.INVALID_ARGUMENT:  # DESIGN §5.6: with the fields it refused
        assert violations, f"{name} answered INVALID_ARGUMENT naming no field: {details}"
    if check is not None:
        check(method, requests_[0], code, violations)


def _call(
    channel: grpc.Channel, name: str, method: MethodDescriptor, requests_: list[Any]
) -> tuple[grpc.StatusCode, str, list[tuple[str, str]]]:
    def serialize(message: Any) -> bytes:
        return bytes(message.SerializeToString())

    try:
        if method.client_streaming:
            call = channel.stream_stream(name, request_serializer=serialize)
            for _ in call(iter(requests_), timeout=2):
                pass
        elif method.server_streaming:
            stream = channel.unary_stream(name, request_serializer=serialize)
            for _ in stream(requests_[0], timeout=0.3):
                pass
        else:
            channel.unary_unary(name, request_serializer=serialize)(requests_[0], timeout=5)
    except grpc.RpcError as error:
        code, details = error.code(), str(error.details())
        return code, details, _violations(error)
    return grpc.StatusCode.OK, "", []


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The call's field violations; none when its status details disagree with its code (the
    client replaces a status whose trailers exceed its metadata limit with RESOURCE_EXHAUSTED)."""
    try:
        return field_violations(error)
    except ValueError:
        return []


def _serving(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _fuzz(
    ports: dict[str, int],
    service: str,
    valid_timestamps: bool = False,
    check: Check | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> None:
    """Drive every RPC of service; every answer's code is expected, and passes `check` if given
    (called with the first request: a unary call sends only that one). `options`: the channels'."""
    channels = {
        name: grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
        for name, port in ports.items()
    }
    try:
        for owner, method in METHODS:
            if owner != service:
                continue
            _fuzz_one(channels[service], method, valid_timestamps, check)
            for name, channel in channels.items():
                assert _serving(channel), f"{name} not SERVING after {method.name}"
    finally:
        for channel in channels.values():
            channel.close()


def _fuzz_one(
    channel: grpc.Channel, method: MethodDescriptor, valid_timestamps: bool, check: Check | None
) -> None:
    examples = 6 if method.server_streaming else 25
    batch = st.lists(requests(method.input_type, valid_timestamps), min_size=1, max_size=4)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batch)
    def drive(requests_: list[Any]) -> None:
        _invoke(channel, method, requests_, check)

    drive()


@pytest.mark.parametrize("service", ["registry", "intake"])
async def test_every_rpc_answers_random_input_with_expected_codes(
    ports: dict[str, int], service: str
) -> None:
    await asyncio.to_thread(_fuzz, ports, service)


async def test_every_metrics_rpc_answers_random_input_with_expected_codes(
    ports: dict[str, int],
) -> None:
    await asyncio.to_thread(_fuzz, ports, "metrics", True)


def out_of_range_timestamps(request: Any) -> list[str]:
    """The request's top-level Timestamp fields that are set and outside protobuf's range."""
    return [
        field.name
        for field in request.DESCRIPTOR.fields
        if field.message_type is not None
        and field.message_type.full_name == "google.protobuf.Timestamp"
        and not field.is_repeated
        and request.HasField(field.name)
        and not (
            TIMESTAMP_SECONDS[0] <= getattr(request, field.name).seconds <= TIMESTAMP_SECONDS[1]
            and TIMESTAMP_NANOS[0] <= getattr(request, field.name).nanos <= TIMESTAMP_NANOS[1]
        )
    ]


async def test_metrics_refuses_out_of_range_timestamps_as_invalid(ports: dict[str, int]) -> None:
    refused: Counter[str] = Counter()

    def refuses_bad_timestamps(
        method: MethodDescriptor, request: Any, code: grpc.StatusCode, violations: list[Any]
    ) -> None:
        bad = out_of_range_timestamps(request)
        if not bad:
            return  # any expected code, as every RPC's
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, bad, code, request)
        named = {field for field, _ in violations}
        assert set(bad) <= named, (method.name, bad, violations)
        refused[method.name] += 1

    # Room for the whole status of a refusal that echoes a long field (an unknown 5000-character
    # wilayat code): under gRPC's default 8 KiB the client reads RESOURCE_EXHAUSTED instead.
    roomy = [("grpc.max_metadata_size", 64 * 1024)]
    await asyncio.to_thread(_fuzz, ports, "metrics", False, refuses_bad_timestamps, roomy)
    # The periods of GetCenterStats and GetWilayatStats: each was sent bad timestamps.
    with_periods = {
        method.name
        for owner, method in METHODS
        if owner == "metrics" and "start_time" in method.input_type.fields_by_name
    }
    assert with_periods == {"GetCenterStats", "GetWilayatStats"}
    assert set(refused) == with_periods, refused
