"""A caller over its rate gets RESOURCE_EXHAUSTED with RetryInfo; other callers are unaffected."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sanad.settings import ServerSettings
from tests.unit.security_echo import every_method, full_name, start_echo

LIST_AGENCIES = next(m for m in every_method() if m.name == "ListAgencies")


async def test_a_burst_over_the_limit_is_refused_with_retry_information() -> None:
    settings = ServerSettings(grpc_host="127.0.0.1", rate_limit_per_s=0.5, rate_limit_burst=2)
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
        assert 1.0 < retry.retry_delay.ToTimedelta().total_seconds() <= 2.0
    finally:
        await running.stop(0)
