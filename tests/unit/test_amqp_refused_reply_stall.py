"""An answer the broker nacks after a stall (an alarm held every confirm back, then the
submitter's reply queue refused the answer) is the broker answering again: the worker's health
goes back to SERVING, as after any confirm that came late (sanad.amqp.outcomes)."""

import asyncio
from types import SimpleNamespace
from typing import Any

import aiormq
import pytest

from sanad.amqp.outcomes import OutcomePublisher, ReplyRefused
from sanad.amqp.topology import Topology


class LateNack:
    """A default exchange that confirms nothing for `after_s`, then nacks the publish."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s

    async def publish(self, message: Any, **_: Any) -> None:
        await asyncio.sleep(self.after_s)
        raise aiormq.exceptions.DeliveryError(None, aiormq.spec.Basic.Nack(delivery_tag=1))


async def test_a_reply_nacked_after_a_stall_ends_the_stall() -> None:
    stalls: list[bool] = []
    outcomes = OutcomePublisher(
        Topology("t"),
        "t.batch",
        max_retries=1,
        retry_delay_s=1,
        timeout_s=0.02,
        on_stall=stalls.append,
    )
    outcomes.channel = SimpleNamespace(default_exchange=LateNack(after_s=0.1))  # type: ignore[assignment]

    with pytest.raises(ReplyRefused):
        await outcomes.reply("amq.gen-full", b"answer", "c-1", "sanad.v1.BatchResult")

    assert stalls[0] is True
    assert stalls[-1] is False  # the broker answers again: health is the connection's
