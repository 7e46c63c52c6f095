"""The bench's confirm floor: raw publish-with-confirm at a fixed rate against the real broker,
one latency a message, and nothing left on the broker afterwards."""

import aio_pika
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity

from bench.ceilings import amqp_confirm_at_rate
from sanad.domain.ids import new_id
from tests.conftest import AMQP_URL


async def test_each_message_is_confirmed_and_timed_and_its_queue_deleted() -> None:
    queue_name = f"tidy-{new_id()[:10]}.bench-confirm"

    result = await amqp_confirm_at_rate(AMQP_URL, queue_name, rate=100, seconds=0.5)

    assert (result.completed, result.errors, len(result.latencies)) == (50, 0, 50)
    assert all(latency > 0 for latency in result.latencies)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        with pytest.raises(ChannelNotFoundEntity):
            await (await connection.channel()).declare_queue(queue_name, passive=True)
