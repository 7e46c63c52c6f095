"""Packing publishes: what arrives while messages await confirms goes out as one pack."""

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sanad.amqp.inbox import collect
from sanad.amqp.packing import Packing, PackingPublisher, pack
from sanad.amqp.topology import ITEMS_HEADER
from sanad.errors import Unavailable
from sanad.v1 import events_pb2

ITEM = "sanad.v1.TransactionSubmitted"
PACK = "sanad.v1.TransactionsSubmitted"


@dataclass
class Sent:
    body: bytes
    message_type: str
    message_id: str
    confirm: asyncio.Future[None]


@dataclass
class HeldPublisher:
    """Records every publish and confirms only when the test says so."""

    sent: list[Sent] = field(default_factory=list)
    # ConfirmedPublisher's own confirm limit; far off unless a test is about it.
    timeout_s: float = 60.0

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if message_type == PACK:
            carried = events_pb2.TransactionsSubmitted.FromString(body).items
            assert headers == {ITEMS_HEADER: len(carried)}
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append(Sent(body, message_type, message_id, confirm))
        await confirm


def item(n: int) -> bytes:
    return events_pb2.TransactionSubmitted(transaction_id=f"T{n}", fee_baisa=n).SerializeToString()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def items_of(sent: Sent) -> list[str]:
    if sent.message_type == ITEM:
        return [events_pb2.TransactionSubmitted.FromString(sent.body).transaction_id]
    return [i.transaction_id for i in events_pb2.TransactionsSubmitted.FromString(sent.body).items]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_a_pack_is_the_encoding_of_the_repeated_field(bodies: list[bytes]) -> None:
    expected = events_pb2.TransactionsSubmitted()
    for n, _ in enumerate(bodies):
        expected.items.add(transaction_id=f"T{n}", beneficiary_hash=bodies[n].hex())
    encoded = pack([i.SerializeToString() for i in expected.items])
    assert events_pb2.TransactionsSubmitted.FromString(encoded) == expected


async def test_a_lone_item_goes_alone_and_later_ones_are_packed_until_a_confirm() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    first = asyncio.create_task(
        packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1")
    )
    await settle()
    assert [(s.message_type, s.message_id) for s in broker.sent] == [(ITEM, "T1")]
    rest = [
        asyncio.create_task(
            packer.publish("x", "k", item(n), message_type=ITEM, message_id=f"T{n}")
        )
        for n in range(2, 6)
    ]
    await settle()
    assert len(broker.sent) == 1  # the others wait for the first confirm
    broker.sent[0].confirm.set_result(None)
    await first
    await settle()
    assert not any(t.done() for t in rest)  # each returns only once its own pack is confirmed
    assert [(s.message_type, s.message_id) for s in broker.sent[1:]] == [(PACK, "T2")]
    assert items_of(broker.sent[1]) == ["T2", "T3", "T4", "T5"]
    broker.sent[1].confirm.set_result(None)
    await asyncio.gather(*rest)


async def test_limits_split_packs_and_several_fly_at_once() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_items=3, max_inflight=2))
    calls = [
        asyncio.create_task(
            packer.publish("x", "k", item(n), message_type=ITEM, message_id=f"T{n}")
        )
        for n in range(8)
    ]
    await settle()
    # Two go alone at once; the rest wait for a confirm, then go at most three to a message.
    assert [items_of(s) for s in broker.sent] == [["T0"], ["T1"]]
    broker.sent[1].confirm.set_result(None)
    await settle()
    assert [items_of(s) for s in broker.sent[2:]] == [["T2", "T3", "T4"]]
    broker.sent[0].confirm.set_result(None)
    await settle()
    assert [items_of(s) for s in broker.sent[3:]] == [["T5", "T6", "T7"]]
    for sent in broker.sent:
        if not sent.confirm.done():
            sent.confirm.set_result(None)
    await asyncio.gather(*calls)


async def test_a_pack_stays_within_its_byte_limit_but_a_larger_item_still_goes() -> None:
    broker = HeldPublisher()
    huge = events_pb2.TransactionSubmitted(
        transaction_id="T1", submitted_by="x" * 500
    ).SerializeToString()
    limit = 2 * len(item(2))
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_bytes=limit, max_inflight=1))
    bodies = [item(0), huge, item(2), item(3), item(4)]
    calls = [
        asyncio.create_task(packer.publish("x", "k", body, message_type=ITEM, message_id=f"T{n}"))
        for n, body in enumerate(bodies)
    ]
    await settle()
    while any(not c.done() for c in calls):
        broker.sent[-1].confirm.set_result(None)
        await settle()
    assert [items_of(s) for s in broker.sent] == [["T0"], ["T1"], ["T2", "T3"], ["T4"]]


async def test_a_failed_publish_fails_every_item_it_carried() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    calls = [
        asyncio.create_task(
            packer.publish("x", "k", item(n), message_type=ITEM, message_id=f"T{n}")
        )
        for n in range(3)
    ]
    await settle()
    broker.sent[0].confirm.set_result(None)
    await settle()
    broker.sent[1].confirm.set_exception(Unavailable("the message broker did not confirm"))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] is None
    assert all(isinstance(r, Unavailable) for r in results[1:])


async def test_an_item_whose_caller_gave_up_before_it_was_sent_is_not_sent() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    first = asyncio.create_task(
        packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1")
    )
    await settle()
    with pytest.raises(Unavailable):
        await packer.publish("x", "k", item(2), message_type=ITEM, message_id="T2", timeout_s=0.01)
    third = asyncio.create_task(
        packer.publish("x", "k", item(3), message_type=ITEM, message_id="T3")
    )
    await settle()
    broker.sent[0].confirm.set_result(None)
    await first
    await settle()
    assert [items_of(s) for s in broker.sent] == [["T1"], ["T3"]]
    broker.sent[1].confirm.set_result(None)
    await third
    await packer.drain()


async def test_other_types_pass_straight_through() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    calls = [
        asyncio.create_task(
            packer.publish("x", "k", b"change", message_type="sanad.v1.Other", message_id=f"C{n}")
        )
        for n in range(3)
    ]
    await settle()
    assert [(s.body, s.message_type) for s in broker.sent] == [(b"change", "sanad.v1.Other")] * 3
    for sent in broker.sent:
        sent.confirm.set_result(None)
    await asyncio.gather(*calls)


async def test_no_time_left_is_unavailable_at_once() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK})
    with pytest.raises(Unavailable):
        await packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1", timeout_s=0)
    assert broker.sent == []


def rejected_as_aiormq_does(confirm: asyncio.Future[None]) -> None:
    """A connection closed with aiormq's default exc, or force-closed, rejects its confirms so."""
    confirm.set_exception(asyncio.CancelledError)


def cancelled(confirm: asyncio.Future[None]) -> None:
    confirm.cancel()


@pytest.mark.parametrize("reject", [rejected_as_aiormq_does, cancelled])
async def test_a_confirm_failed_as_cancelled_fails_every_item_unavailable_at_once(
    reject: Callable[[asyncio.Future[None]], None],
) -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    calls = [
        asyncio.create_task(
            packer.publish("x", "k", item(n), message_type=ITEM, message_id=f"T{n}")
        )
        for n in range(3)
    ]
    await settle()
    reject(broker.sent[0].confirm)  # T0, alone
    await settle()
    reject(broker.sent[1].confirm)  # T1 and T2, packed
    # No deadline and a far-off publisher limit: only the failed confirm can end these calls.
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2.0)
    assert [type(r) for r in results] == [Unavailable] * 3


async def test_a_lane_cancelled_mid_publish_fails_its_items_unavailable_and_stays_cancelled() -> (
    None
):
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    call = asyncio.create_task(
        packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1")
    )
    await settle()
    [lane] = packer._lanes.values()
    [sending] = lane.inflight
    sending.cancel()  # as the loop's shutdown cancels what is left
    with pytest.raises(Unavailable):
        await asyncio.wait_for(call, 2.0)
    assert sending.cancelled()


async def test_a_lane_cancelled_before_it_ran_fails_its_items_unavailable() -> None:
    broker = HeldPublisher()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    call = asyncio.create_task(
        packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1")
    )
    await asyncio.sleep(0)  # the call has made its lane's task, which has not run yet
    [lane] = packer._lanes.values()
    [sending] = lane.inflight
    sending.cancel()
    with pytest.raises(Unavailable):
        await asyncio.wait_for(call, 2.0)
    assert broker.sent == []


@pytest.mark.parametrize("deadline", [None, 3600.0])
async def test_an_item_never_confirmed_is_unavailable_within_the_publishers_own_limit(
    deadline: float | None,
) -> None:
    broker = HeldPublisher(timeout_s=0.05)
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    # The bound is the behaviour: without the publisher's own 0.05 s limit the call would wait
    # for the caller's deadline (none, or an hour); 10 s, 200 times the limit, turns that into
    # a TimeoutError instead of Unavailable.
    with pytest.raises(Unavailable, match="did not confirm in time"):
        await asyncio.wait_for(
            packer.publish(
                "x", "k", item(1), message_type=ITEM, message_id="T1", timeout_s=deadline
            ),
            10.0,
        )
    broker.sent[0].confirm.set_result(None)
    await packer.drain()


@dataclass
class Delivery:
    headers: dict[str, Any] | None = None


async def test_a_micro_batch_counts_a_pack_as_its_items() -> None:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    for delivery in [
        Delivery(),
        Delivery({ITEMS_HEADER: 6}),
        Delivery({ITEMS_HEADER: 3}),
        Delivery(),
    ]:
        inbox.put_nowait(delivery)
    first = await collect(inbox, asyncio.Event(), max_items=10, max_wait_s=0.05)
    assert len(first) == 3  # 1 + 6 + 3 items reach the bound of 10
    assert len(await collect(inbox, asyncio.Event(), max_items=10, max_wait_s=0.05)) == 1
