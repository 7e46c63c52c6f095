"""In the dev auth mode, a caller without credentials or x-sanad-identity that retries over a new
connection gets the transaction id of its first attempt: the same request id, the same caller."""

import grpc
import pytest

from sanad.v1 import intake_pb2_grpc
from tests.integration.conftest import Stack, open_centre_with_service, submit_request

pytestmark = pytest.mark.integration

# A channel of its own connection: gRPC otherwise shares one among channels to one target.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


async def test_an_anonymous_retry_over_a_new_connection_gets_the_same_transaction(
    stack: Stack,
) -> None:
    center_id, service = await open_centre_with_service(stack)
    assert stack.intake_app.server is not None
    target = f"127.0.0.1:{stack.intake_app.server.port}"
    replies = []
    for _ in range(2):  # the first attempt, then its retry from a new connection (a new port)
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            request = submit_request(center_id, service, "anonymous-retry")
            replies.append(await stub.SubmitTransaction(request, timeout=10))
    first, retry = replies
    assert retry.transaction_id == first.transaction_id
    assert retry.submit_time == first.submit_time
