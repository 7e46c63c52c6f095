"""Reading a micro-batch off a consumer's inbox: up to N items or T seconds, ended by stop.

A message counts once and a pack as the items its header names (sanad.amqp.packing), so a
micro-batch bounds the work a handler call does, not the deliveries it takes.
"""

import asyncio
import time

from aio_pika.abc import AbstractIncomingMessage

from sanad.amqp.topology import ITEMS_HEADER

Inbox = asyncio.Queue[AbstractIncomingMessage]

# How long to wait for a micro-batch's first delivery before the consume loop looks up again.
FIRST_WAIT_S = 0.5


async def collect(
    inbox: Inbox, stop: asyncio.Event, max_items: int, max_wait_s: float
) -> list[AbstractIncomingMessage]:
    """The next micro-batch: empty when nothing came within FIRST_WAIT_S; then up to max_items
    items, or what arrives within max_wait_s of the first, or what came before stop."""
    try:
        async with asyncio.timeout(FIRST_WAIT_S):
            first = await inbox.get()
    except TimeoutError:
        return []
    batch = [first]
    items = _items(first)
    deadline = time.monotonic() + max_wait_s
    while items < max_items and not stop.is_set():
        if not inbox.empty():  # the fast path: deliveries already waiting
            message = inbox.get_nowait()
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            found = await _next_or_stop(inbox, stop, remaining)
            if found is None:
                break
            message = found
        batch.append(message)
        items += _items(message)
    return batch


async def _next_or_stop(
    inbox: Inbox, stop: asyncio.Event, wait_s: float
) -> AbstractIncomingMessage | None:
    """The next delivery within wait_s, or None on timeout or stop (SIGTERM ends the wait).

    A cancelled get leaves its message in the inbox, unacked; deliveries arrive in
    delivery-tag order, so the batch's ack(multiple=True) never covers it.
    """
    getter = asyncio.ensure_future(inbox.get())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({getter, stopper}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if getter.done():
        return getter.result()
    getter.cancel()
    return None


def _items(message: AbstractIncomingMessage) -> int:
    """How many items a message carries: a pack's header says, any other message is one."""
    count = (message.headers or {}).get(ITEMS_HEADER)
    return count if isinstance(count, int) and count > 0 else 1
