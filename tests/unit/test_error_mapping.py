"""The interceptor maps domain errors to exact status codes and never leaks a traceback."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sanad import errors
from sanad.rpc.health import LIVENESS
from sanad.rpc.server import start_server
from sanad.rpc.status import field_violations
from sanad.settings import ServerSettings
from sanad.v1 import metrics_pb2, metrics_pb2_grpc
from tests.unit.metrics_stub import always_up, serving

RAISES: dict[str, Exception] = {
    "invalid": errors.Invalid([errors.Violation("center_id", "is required")]),
    "missing": errors.NotFound("centre 'x' not found"),
    "taken": errors.AlreadyExists("already there"),
    "state": errors.PreconditionFailed("suspended"),
    "busy": errors.Unavailable("broker away"),
    "limit": errors.RateLimited("slow down", retry_after_s=1.5),
    "bug": ZeroDivisionError("secret internals"),
    # What a refusal repeating long input looks like: a value of 20,000 characters, in Arabic.
    "long": errors.Invalid(
        [errors.Violation("wilayat_code", f"unknown wilayat {'ولاية' * 4000!r}")]
    ),
    "many": errors.Invalid(
        [
            errors.Violation(f"offered_service_codes[{i}]", f"unknown {'س' * 150}")
            for i in range(500)
        ]
    ),
    "far": errors.NotFound(f"transaction {'T' * 50_000!r} not found"),
}


class Raising(metrics_pb2_grpc.MetricsServiceServicer):
    async def GetCenterStats(self, request, context):  # type: ignore[no-untyped-def]
        raise RAISES[request.center_id]


@pytest.fixture
async def stub() -> AsyncIterator[metrics_pb2_grpc.MetricsServiceStub]:
    async with serving(Raising()) as stub:
        yield stub


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT),
        ("missing", grpc.StatusCode.NOT_FOUND),
        ("taken", grpc.StatusCode.ALREADY_EXISTS),
        ("state", grpc.StatusCode.FAILED_PRECONDITION),
        ("busy", grpc.StatusCode.UNAVAILABLE),
        ("limit", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("bug", grpc.StatusCode.INTERNAL),
    ],
)
async def test_each_domain_error_gets_its_status_code(
    stub: metrics_pb2_grpc.MetricsServiceStub, key: str, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id=key))
    assert caught.value.code() == code


async def test_invalid_input_carries_bad_request_field_violations(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="invalid"))
    assert field_violations(caught.value) == [("center_id", "is required")]


async def test_a_refusal_repeating_long_input_keeps_its_code_within_the_metadata_limit(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    # The client's default limit of 8 KiB of metadata: a longer status reached the caller as
    # RESOURCE_EXHAUSTED instead of its own code.
    for key, code in (
        ("long", grpc.StatusCode.INVALID_ARGUMENT),
        ("many", grpc.StatusCode.INVALID_ARGUMENT),
        ("far", grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id=key))
        assert caught.value.code() == code, key
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="long"))
    ((field, description),) = field_violations(caught.value)
    assert field == "wilayat_code"
    assert description.startswith("unknown wilayat 'ولاية")
    assert description.endswith(" characters)")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCenterStats(metrics_pb2.GetCenterStatsRequest(center_id="many"))
    shown = field_violations(caught.value)
    assert shown[0][0] == "offered_service_codes[0]"
    assert shown[-1] == ("request", f"and {500 - len(shown) + 1} more violations not shown")


async def test_an_unexpected_error_hides_its_internals_and_quotes_the_request_id(
    stub: metrics_pb2_grpc.MetricsServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCenterStats(
            metrics_pb2.GetCenterStatsRequest(center_id="bug"),
            metadata=(("x-request-id", "req-42"),),
        )
    assert "secret internals" not in caught.value.details()
    assert "Traceback" not in caught.value.details()
    assert "req-42" in caught.value.details()


async def test_health_reports_serving_once_dependencies_answer() -> None:
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"), 0, [], checks={"up": always_up}
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await running.health.check_once()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await running.health.shutdown()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await running.stop(0.5)


async def test_health_stays_not_serving_while_a_dependency_fails() -> None:
    async def down() -> bool:
        raise ConnectionError("no database")

    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"), 0, [], checks={"mongodb": down}
    )
    assert await running.health.check_once() is False
    # Liveness (what restarts a pod) asks whether the process answers, not its dependencies.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        alive = await health.Check(health_pb2.HealthCheckRequest(service=LIVENESS))
    assert overall.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert alive.status == health_pb2.HealthCheckResponse.SERVING
    await running.stop(0.5)


async def test_health_watch_streams_each_change_of_status() -> None:
    # grpc_health's Watch writes with context.write rather than yielding: the interceptor
    # must pass it through (it answered every Watch INTERNAL).
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"), 0, [], checks={"up": always_up}
    )
    await running.health.check_once()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        first = await watch.read()
        await running.health.shutdown()
        second = await watch.read()
        watch.cancel()
    assert (first.status, second.status) == (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    await running.stop(0.5)


async def test_a_stopping_server_says_not_serving_while_it_still_takes_calls() -> None:
    # During the notice, a probe's Check is answered NOT_SERVING, not refused as UNAVAILABLE:
    # a load balancer stops sending calls before the server stops taking them.
    running = await start_server(
        ServerSettings(grpc_host="127.0.0.1"), 0, [], checks={"up": always_up}
    )
    await running.health.check_once()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stopping = asyncio.create_task(running.stop(0.5, notice_s=30))
        async with asyncio.timeout(20):
            while not stopping.done():
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                await asyncio.sleep(0.01)
        assert not stopping.done()
        stopping.cancel()
    await running.server.stop(0)
