"""Every method's RPC series exist at zero from the start, so rate() and increase() see a
method's first call of each code; a call to a method the server lacks is counted and logged
under one fixed name."""

import asyncio
import logging

import grpc
import pytest
from prometheus_client import REGISTRY

from sanad.errors import Unavailable
from sanad.rpc.interceptors import ServerInterceptor, _Call, _Method
from sanad.v1 import metrics_pb2
from tests.unit.test_rpc_metric_types import SERVICE, channel

__all__ = ["channel"]  # the fixture, used by name below


def handled(service: str, method: str, kind: str, code: str) -> float | None:
    labels = {
        "grpc_type": kind,
        "grpc_service": service,
        "grpc_method": method,
        "grpc_code": code,
    }
    return REGISTRY.get_sample_value("sanad_grpc_server_handled_total", labels)


def test_every_method_has_every_code_before_its_first_call() -> None:
    # Every code of every method (other tests may have called some, so at zero or more).
    service = metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"]
    ServerInterceptor().prepare([service.full_name])
    for method in service.methods:
        for code in grpc.StatusCode:
            assert handled(service.full_name, method.name, "unary", code.name) is not None


def test_a_service_served_by_generic_handlers_alone_is_left_to_its_first_calls() -> None:
    # No descriptor to read its methods from (test servers, health's own): nothing to prepare.
    ServerInterceptor().prepare(["sanad.test.NoDescriptor"])


async def test_a_call_to_a_method_the_server_lacks_is_counted_and_logged(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    before = handled("unknown", "unknown", "unary", "UNIMPLEMENTED") or 0.0
    with (
        caplog.at_level(logging.WARNING, logger="sanad.rpc"),
        pytest.raises(grpc.aio.AioRpcError) as refused,
    ):
        await channel.unary_unary(f"/{SERVICE}/SubmitTransactionV2")(b"x")
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert handled("unknown", "unknown", "unary", "UNIMPLEMENTED") == before + 1
    assert any("SubmitTransactionV2" in record.getMessage() for record in caplog.records)
    # The caller's path is no label: a million paths make one series.
    paths = {
        sample.labels.get("grpc_method")
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "sanad_grpc_server_handled_total"
    }
    assert "SubmitTransactionV2" not in paths


def test_a_storage_lag_past_a_minute_is_told_apart() -> None:
    # The "submission to storage" panel drew a flat 60 s after any outage of the workers longer
    # than a minute: the histogram had no bucket above it (observability helper).
    from sanad.telemetry.metrics import RECORDED_LAG_SECONDS  # noqa: PLC0415

    before = _bucket(300.0)
    RECORDED_LAG_SECONDS.observe(200.0)
    assert _bucket(300.0) == before + 1
    assert _bucket(120.0) is not None


def _bucket(le: float) -> float | None:
    return REGISTRY.get_sample_value(
        "sanad_transaction_recorded_lag_seconds_bucket", {"le": str(le)}
    )


class _EndedContext:
    """A call gRPC ended meanwhile (done): its status can no longer be sent."""

    def __init__(self, done: bool = True) -> None:
        self._done = done

    def done(self) -> bool:
        return self._done

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    async def abort(self, code: object, details: str, trailing_metadata: object = ()) -> None:
        raise RuntimeError('Failed "execute_batch"')  # as cygrpc's ExecuteBatchError


@pytest.mark.parametrize("error", [Unavailable("the database did not answer in time"), KeyError()])
async def test_a_failure_whose_status_cannot_be_sent_ends_the_call_quietly(
    error: Exception,
) -> None:
    # The handler failed as the call's deadline passed: gRPC had ended the call, sending its
    # status failed, and gRPC logged an error with a traceback for each such call.
    method = _Method("/sanad.test.Kinds/Unary", "unary")
    call = _Call(method, ())
    with pytest.raises(asyncio.CancelledError):
        await call.fail(_EndedContext(), error)  # type: ignore[arg-type]
    assert call.finished


async def test_a_status_that_fails_to_go_for_another_reason_keeps_its_error() -> None:
    call = _Call(_Method("/sanad.test.Kinds/Unary", "unary"), ())
    with pytest.raises(RuntimeError, match="execute_batch"):
        await call.fail(_EndedContext(done=False), Unavailable("x"))  # type: ignore[arg-type]
