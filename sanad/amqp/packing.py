"""Packs concurrent publishes of one message type into one confirmed message.

Each message costs the broker and its consumer about the same however small it is: on this
machine raw publish-with-confirm tops out below the rate at which gRPC alone answers streamed
submissions. So, as a database groups commits, a lane publishes at once while fewer than
`max_inflight` of its messages await their confirms, and what arrives meanwhile goes out as one
pack when a confirm returns. Nothing waits when idle: a lone item is published as itself, in
its own type, exactly as without packing.

A pack of items of type T is a message whose field 1 repeats T (`sanad.v1.TransactionsSubmitted`
for `TransactionSubmitted`); its body is the items' own bytes, each framed as that field, so
nothing is serialized twice. Every caller returns once the message that carries its item is
confirmed, or raises Unavailable as a lone publish would, at the latest after twice the
publisher's own confirm limit when its caller set no shorter deadline; an item whose caller gave
up before it was sent is not sent.

A caller that must act on the confirm itself, whether or not it still waits then (intake counts
a submission at its first confirm: the broker took it, so it will be stored, even when its
caller's deadline passed before the confirm came), passes `on_confirm`: the lane runs it once
the message carrying the item is confirmed, once per such message, and never for a message the
broker refused or an item never sent.
"""

import asyncio
import contextvars
import functools
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sanad.amqp.topology import ITEMS_HEADER
from sanad.errors import Unavailable
from sanad.expiry import awaited_within
from sanad.telemetry.metrics import AMQP_PACK_ITEMS

log = logging.getLogger("sanad.amqp")

# Field 1, wire type 2 (length-delimited): the tag byte of a pack's repeated items.
_ITEMS_TAG = b"\x0a"


class Publisher(Protocol):
    """sanad.amqp.publisher.ConfirmedPublisher, as far as packing uses it."""

    # Seconds one publish may wait for its confirm.
    timeout_s: float

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
    ) -> None: ...


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# The most submissions intake may pack into one message (SANAD_PACK_MAX_ITEMS' bound); the
# ingest worker refuses a pack of more unread (workers.ingest.handlers).
MAX_PACK_ITEMS = 10_000


def pack(bodies: Sequence[bytes]) -> bytes:
    """The encoding of a message whose repeated field 1 holds these serialized items."""
    return b"".join(_ITEMS_TAG + _varint(len(body)) + body for body in bodies)


@dataclass(frozen=True)
class Packing:
    """How a lane packs: items and bytes per message, messages awaiting confirms at once."""

    max_items: int = 256
    max_bytes: int = 512 * 1024
    max_inflight: int = 1


@dataclass
class _Item:
    body: bytes
    message_id: str
    sent: asyncio.Future[None]
    on_confirm: Callable[[], None] | None = None

    def confirmed(self) -> None:
        """The message carrying it was confirmed: run its on_confirm, and answer its caller if
        it still waits."""
        if self.on_confirm is not None:
            _run(self.on_confirm)
        if not self.sent.done():
            self.sent.set_result(None)


@dataclass
class _Lane:
    """One exchange, routing key and item type: its waiting items and messages in flight."""

    publisher: Publisher
    exchange: str
    routing_key: str
    item_type: str
    pack_type: str
    packing: Packing
    waiting: deque[_Item] = field(default_factory=deque)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The metric child looked up once, not on every message.
        self.sizes = AMQP_PACK_ITEMS.labels(self.exchange)

    async def publish(
        self,
        body: bytes,
        message_id: str,
        timeout_s: float | None,
        on_confirm: Callable[[], None] | None = None,
    ) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise Unavailable("no time left of the caller's deadline to publish")
        # An item may wait for a message ahead of it and then for its own, each confirmed
        # within the publisher's limit: past twice that, nothing would ever answer its caller.
        limit = 2 * self.publisher.timeout_s
        if timeout_s is not None:
            limit = min(limit, timeout_s)
        item = _Item(body, message_id, asyncio.get_running_loop().create_future(), on_confirm)
        self.waiting.append(item)
        self._send_what_fits()
        try:
            await awaited_within(item.sent, limit)
        except TimeoutError as error:
            raise Unavailable("the message broker did not confirm in time; retry later") from error
        finally:
            # Only this caller waits on it: a caller that gave up (its deadline, or its call
            # cancelled) leaves a cancelled item, which _take skips if it is still waiting.
            item.sent.cancel()

    def _send_what_fits(self) -> None:
        while self.waiting and len(self.inflight) < self.packing.max_inflight:
            items = self._take()
            if not items:
                return
            # A fresh context: no caller's deadline or request id applies to a shared message.
            task = asyncio.create_task(self._send(items), context=contextvars.Context())
            self.inflight.add(task)
            task.add_done_callback(functools.partial(self._sent, items))

    def _take(self) -> list[_Item]:
        """The next message's items: in arrival order, within the limits, none abandoned."""
        items: list[_Item] = []
        size = 0
        while self.waiting and len(items) < self.packing.max_items:
            item = self.waiting[0]
            if item.sent.done():  # its caller gave up before it was sent
                self.waiting.popleft()
                continue
            if items and size + len(item.body) > self.packing.max_bytes:
                break
            items.append(self.waiting.popleft())
            size += len(item.body)
        return items

    async def _send(self, items: list[_Item]) -> None:
        if len(items) == 1:
            body, message_type, headers = items[0].body, self.item_type, None
        else:
            body, message_type = pack([item.body for item in items]), self.pack_type
            headers = {ITEMS_HEADER: len(items)}
        self.sizes.observe(len(items))
        try:
            await self.publisher.publish(
                self.exchange,
                self.routing_key,
                body,
                message_type=message_type,
                message_id=items[0].message_id,
                headers=headers,
            )
        except Exception as error:
            _fail(items, error)
            return
        for item in items:
            item.confirmed()

    def _sent(self, items: list[_Item], task: asyncio.Task[None]) -> None:
        if not all(item.sent.done() for item in items):
            # The task ended by a BaseException that _send lets through: a CancelledError from
            # a confirm failed by a closing connection, or the task cancelled (even before it
            # ran, so no handler inside it could answer). Only here does every end pass.
            _fail(items, _unconfirmed())
        self.inflight.discard(task)
        self._send_what_fits()


def _run(on_confirm: Callable[[], None]) -> None:
    """One item's on_confirm: its failure is logged, and spoils neither the other items of its
    message nor any caller's answer."""
    try:
        on_confirm()
    except Exception:
        log.exception("an action on a confirmed message failed")


def _unconfirmed() -> Unavailable:
    return Unavailable("the message broker did not confirm; retry later")


def _fail(items: list[_Item], error: BaseException) -> None:
    """Raise the error to every caller of these items still waiting."""
    for item in items:
        if not item.sent.done():
            item.sent.set_exception(error)


class PackingPublisher:
    """publish() as ConfirmedPublisher's; messages of the types in `packs` are packed.

    `packs` maps an item type to its pack type; other types pass straight through.
    """

    def __init__(
        self, publisher: Publisher, packs: Mapping[str, str], packing: Packing | None = None
    ) -> None:
        self.publisher = publisher
        self.packs = dict(packs)
        self.packing = packing or Packing()
        self._lanes: dict[tuple[str, str, str], _Lane] = {}

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        timeout_s: float | None = None,
        on_confirm: Callable[[], None] | None = None,
    ) -> None:
        """Return once the message carrying this body is confirmed; on_confirm runs then, for a
        packed type even when this caller stopped waiting before (for another type, only while
        it waits: its publish runs in the caller's own task)."""
        pack_type = self.packs.get(message_type)
        if pack_type is None:
            await self.publisher.publish(
                exchange,
                routing_key,
                body,
                message_type=message_type,
                message_id=message_id,
                timeout_s=timeout_s,
            )
            if on_confirm is not None:
                _run(on_confirm)
            return
        key = (exchange, routing_key, message_type)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(
                self.publisher, exchange, routing_key, message_type, pack_type, self.packing
            )
        await lane.publish(body, message_id, timeout_s, on_confirm)

    async def drain(self) -> None:
        """Wait for every message in flight; before closing the publisher."""
        for lane in self._lanes.values():
            while lane.inflight:
                await asyncio.wait(set(lane.inflight))
