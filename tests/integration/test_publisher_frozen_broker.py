"""A broker that keeps its connection open but stops answering (the wedged broker .ci/run
meets) holds a confirmed publish no longer than the publisher's own limit: the caller gets
UNAVAILABLE, never a hang (DESIGN §5, invariant 1). The packed submissions path has its own
proof; this is every other publish (status changes, ratings), through the publisher itself."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from sanad.amqp.publisher import ConfirmedPublisher
from sanad.amqp.topology import SUBMITTED, Topology
from sanad.errors import Unavailable
from tests.integration.broker_support import BrokerProxy, proxy_fixture  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
async def publisher(proxy: BrokerProxy, amqp_prefix: str) -> AsyncIterator[ConfirmedPublisher]:
    publisher = ConfirmedPublisher(proxy.url, Topology(amqp_prefix), timeout_s=1.0)
    await asyncio.wait_for(publisher.connect(), 20)
    yield publisher
    proxy.thaw()
    await asyncio.wait_for(publisher.close(), 20)


async def test_a_publish_to_a_broker_that_stopped_answering_is_unavailable_not_a_hang(
    publisher: ConfirmedPublisher, proxy: BrokerProxy, amqp_prefix: str
) -> None:
    proxy.freeze()
    # 30 times the publisher's limit: a publish that waited for a confirm that never comes
    # would end in TimeoutError here instead.
    with pytest.raises(Unavailable, match="did not confirm"):
        await asyncio.wait_for(
            publisher.publish(
                Topology(amqp_prefix).transactions_exchange,
                SUBMITTED,
                b"event",
                message_type="sanad.v1.TransactionSubmitted",
                message_id="frozen-1",
            ),
            30,
        )
