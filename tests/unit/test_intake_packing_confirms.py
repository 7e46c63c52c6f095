"""A packed item's on_confirm runs when the broker confirms the message carrying it, once, whether
its caller still waits or not; never for a message refused, nor for an item never sent."""

import asyncio
from collections.abc import Callable

import pytest

from sanad.amqp.packing import Packing, PackingPublisher
from sanad.errors import Unavailable
from tests.unit.test_amqp_packing import ITEM, PACK, HeldPublisher, item, settle


class Confirms:
    """Records which items' on_confirm ran, in order."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def of(self, name: str) -> Callable[[], None]:
        return lambda: self.ran.append(name)


def publishing(
    packer: PackingPublisher, confirms: Confirms, n: int, timeout_s: float | None = None
) -> asyncio.Task[None]:
    return asyncio.create_task(
        packer.publish(
            "x",
            "k",
            item(n),
            message_type=ITEM,
            message_id=f"T{n}",
            timeout_s=timeout_s,
            on_confirm=confirms.of(f"T{n}"),
        )
    )


async def test_an_item_confirmed_after_its_caller_gave_up_still_runs_its_on_confirm() -> None:
    broker, confirms = HeldPublisher(), Confirms()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    late = publishing(packer, confirms, 1, timeout_s=0.05)
    await settle()
    with pytest.raises(Unavailable):
        await late  # the caller's deadline passed while its message awaited the confirm
    assert confirms.ran == []
    broker.sent[0].confirm.set_result(None)
    await packer.drain()
    assert confirms.ran == ["T1"]


async def test_every_item_of_a_confirmed_pack_runs_its_on_confirm_once() -> None:
    broker, confirms = HeldPublisher(), Confirms()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    calls = [publishing(packer, confirms, n) for n in range(4)]
    await settle()
    broker.sent[0].confirm.set_result(None)
    await settle()
    broker.sent[1].confirm.set_result(None)  # T1, T2 and T3 in one pack
    await asyncio.gather(*calls)
    await packer.drain()
    assert confirms.ran == ["T0", "T1", "T2", "T3"]


async def test_no_on_confirm_runs_for_a_refused_message_or_an_item_never_sent() -> None:
    broker, confirms = HeldPublisher(), Confirms()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    first = publishing(packer, confirms, 1)
    await settle()
    with pytest.raises(Unavailable):
        await publishing(packer, confirms, 2, timeout_s=0.01)  # gave up before it was sent
    third = publishing(packer, confirms, 3)
    await settle()
    broker.sent[0].confirm.set_exception(Unavailable("the message broker refused it"))
    await settle()
    broker.sent[1].confirm.set_result(None)
    results = await asyncio.gather(first, third, return_exceptions=True)
    assert isinstance(results[0], Unavailable)
    assert confirms.ran == ["T3"]


async def test_an_on_confirm_that_fails_spoils_neither_the_others_nor_the_callers() -> None:
    broker, confirms = HeldPublisher(), Confirms()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))

    def broken() -> None:
        raise RuntimeError("a counter that fails")

    first = publishing(packer, confirms, 0)
    await settle()
    calls = [
        asyncio.create_task(
            packer.publish("x", "k", item(1), message_type=ITEM, message_id="T1", on_confirm=broken)
        ),
        publishing(packer, confirms, 2),
    ]
    await settle()
    broker.sent[0].confirm.set_result(None)
    await settle()
    broker.sent[1].confirm.set_result(None)
    await asyncio.gather(first, *calls)
    assert confirms.ran == ["T0", "T2"]


async def test_a_type_that_is_not_packed_runs_its_on_confirm_after_the_confirm() -> None:
    broker, confirms = HeldPublisher(), Confirms()
    packer = PackingPublisher(broker, {ITEM: PACK}, Packing(max_inflight=1))
    call = asyncio.create_task(
        packer.publish(
            "x",
            "k",
            b"change",
            message_type="sanad.v1.Other",
            message_id="C1",
            on_confirm=confirms.of("C1"),
        )
    )
    await settle()
    assert confirms.ran == []
    broker.sent[0].confirm.set_result(None)
    await call
    assert confirms.ran == ["C1"]
