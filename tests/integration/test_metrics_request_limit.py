"""Metrics takes no request over 64 KiB, as intake: refused INVALID_ARGUMENT naming its size, and
a centre id within that but longer than any the registry gives out is refused by field (a 3 MB
one was repeated whole in its NOT_FOUND's log line)."""

import grpc
import pytest

from sanad.rpc.server import SMALL_REQUEST_BYTES
from sanad.rpc.status import field_violations
from sanad.v1 import metrics_pb2
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("length", "violation"),
    [
        (SMALL_REQUEST_BYTES, ("request", "bytes; this service takes at most 65,536")),
        (129, ("center_id", "must be at most 128 characters")),
    ],
)
async def test_an_oversized_request_or_centre_id_is_invalid(
    stack: Stack, length: int, violation: tuple[str, str]
) -> None:
    request = metrics_pb2.GetCenterStatsRequest(center_id="C" * length)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.metrics.GetCenterStats(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(refused.value)
    assert (field, description.endswith(violation[1])) == (violation[0], True)
