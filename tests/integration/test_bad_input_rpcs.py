"""Every RPC driven with random and boundary values gets only expected codes; all stay SERVING."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def _invoke(channel: grpc.Channel, method: MethodDescriptor, requests_: list[Any]) -> None:
    name = f"/{method.containing_service.full_name}/{method.name}"
    code, details = _call(channel, name, method, requests_)
    allowed = EXPECTED | (STREAM_ENDINGS if method.server_streaming else set())
    assert code in allowed, f"{name} answered {code}: {details}"


def _call(
    channel: grpc.Channel, name: str, method: MethodDescriptor, requests_: list[Any]
) -> tuple[grpc.StatusCode, str]:
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
        return error.code(), str(error.details())  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def _serving(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _fuzz(ports: dict[str, int], service: str, valid_timestamps: bool = False) -> None:
    channels = {name: grpc.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
    try:
        for owner, method in METHODS:
            if owner != service:
                continue
            _fuzz_one(channels[service], method, valid_timestamps)
            for name, channel in channels.items():
                assert _serving(channel), f"{name} not SERVING after {method.name}"
    finally:
        for channel in channels.values():
            channel.close()


def _fuzz_one(channel: grpc.Channel, method: MethodDescriptor, valid_timestamps: bool) -> None:
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
        _invoke(channel, method, requests_)

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


async def test_metrics_refuses_out_of_range_timestamps_as_invalid(ports: dict[str, int]) -> None:
    await asyncio.to_thread(_fuzz, ports, "metrics")
