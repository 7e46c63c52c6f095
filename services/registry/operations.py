"""What the registry's use cases need from storage, and the feed that wakes watchers."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sanad.domain.clock import epoch_millis, to_millisecond, utcnow
from sanad.domain.codes import MAX_CODE_LENGTH, overlong_codes, required_code_violations
from sanad.errors import Aborted, Invalid, OutOfRange, Violation, check
from sanad.paging import Page, PageRequest
from services.registry.domain import CatalogService, CatalogStatus, Center
from services.registry.listing import CenterFilter, ServiceFilter
from services.registry.validation import list_bounds

Entity = TypeVar("Entity", Center, CatalogService)


# A check run first inside the transaction that saves a centre, given its session: what it reads
# is what the centre is saved against (Store.save_center).
SessionCheck = Callable[[Any], Awaitable[None]]


class Store(Protocol):
    """What the registry needs from storage."""

    async def get_center(self, center_id: str) -> Center | None: ...
    async def get_service(self, code: str) -> CatalogService | None: ...
    async def save_center(
        self, center: Center, *, new: bool, check: "SessionCheck | None" = None
    ) -> Center: ...
    async def save_service(self, service: CatalogService, *, new: bool) -> CatalogService: ...
    async def list_centers(
        self, wanted: CenterFilter, now: datetime, page: PageRequest
    ) -> Page[Center]: ...
    async def list_services(
        self, wanted: ServiceFilter, page: PageRequest
    ) -> Page[CatalogService]: ...
    async def existing_service_codes(
        self, codes: Iterable[str], session: Any = None
    ) -> dict[str, CatalogStatus]: ...
    async def center_changes_after(self, revision: int, limit: int = ...) -> list[Center]: ...
    async def service_changes_after(
        self, revision: int, limit: int = ...
    ) -> list[CatalogService]: ...
    async def head_revision(self) -> int: ...
    async def change_time(self, kind: str, revision: int) -> datetime | None: ...


def stored_now() -> datetime:
    """The current time at MongoDB's millisecond precision, so replies equal what is stored."""
    return to_millisecond(utcnow())


def require(value: str, field: str) -> str:
    """The id or code a call names, or Invalid naming its field when it is empty or longer than
    any the registry gives out (so no refusal or NOT_FOUND echoes an outsized value)."""
    check(required_code_violations(field, value))
    return value


def check_filter_codes(codes: dict[str, str]) -> None:
    """Invalid naming each filter code of a List call that is longer than any code may be."""
    check(overlong_codes(codes))


def check_revision(entity: Center | CatalogService, expected: int | None, what: str) -> None:
    """Aborted when the caller read the entity at another revision than it holds (AIP-154's
    etag); None skips the check. The store's save then writes only over that same revision."""
    if expected is None:
        return
    if expected <= 0:
        raise Invalid([Violation("expected_revision", "must be a revision read from the registry")])
    if entity.revision != expected:
        raise Aborted(
            f"{what} is at revision {entity.revision}, not {expected} as read: it changed "
            "meanwhile; read it again and retry"
        )


async def check_services(
    store: Store,
    offered: tuple[str, ...],
    blocked: tuple[str, ...],
    *,
    prefix: str = "",
    offered_before: tuple[str, ...] = (),
    session: Any = None,
) -> None:
    """Invalid naming each code missing from the catalogue by position: offered_service_codes[2]
    (and, before looking any up, each list longer or code longer than a centre's may be).

    A retired service cannot be newly offered, as it cannot be submitted; one the centre offered
    before it was retired (`offered_before`) may stay in the list, so a caller that sends the
    list back with a change elsewhere is not refused for it (intake refuses its submissions as
    retired either way). It may stay blocked, so a centre's sanctions outlive the retirement.
    With a session, the catalogue is read in its transaction (Store.save_center's check).
    """
    if not offered and not blocked:
        return
    lists = (("offered_service_codes", offered), ("blocked_service_codes", blocked))
    check(
        [
            violation
            for field, codes in lists
            for violation in list_bounds(f"{prefix}{field}", codes, MAX_CODE_LENGTH)
        ]
    )
    known = await store.existing_service_codes({*offered, *blocked}, session)
    found = [
        Violation(f"{prefix}{field}[{index}]", f"unknown catalogue service {code!r}")
        for field, codes in lists
        for index, code in enumerate(codes)
        if code not in known
    ]
    found += [
        Violation(
            f"{prefix}offered_service_codes[{index}]", f"catalogue service {code!r} is retired"
        )
        for index, code in enumerate(offered)
        if known.get(code) is CatalogStatus.RETIRED and code not in offered_before
    ]
    check(found)


async def _not_restored_behind(head: Callable[[], Awaitable[int]], sent: int) -> None:
    """OutOfRange when the registry's latest revision is below one a stream sent: its database
    was restored from a backup while the stream was open."""
    if (latest := await head()) < sent:
        raise OutOfRange(
            [
                Violation(
                    "since_revision",
                    f"the registry's latest revision is now {latest}, before this stream's "
                    f"{sent} (its database was restored); watch from 0 to resynchronise",
                )
            ]
        )


# Reads the update time of a kind's change at a revision (None when none of the kind is there).
Position = Callable[[int], Awaitable[datetime | None]]


async def _still_the_change(position: Position, revision: int, seen: datetime) -> None:
    """OutOfRange when the change the registry holds at revision is not the one a subscriber
    was sent (another update time, or none of its kind): its database was restored from a
    backup and gave the revision to a later change, which a resume from the number alone would
    skip, with every change before it that the backup lacked."""
    held = await position(revision)
    if held is None or epoch_millis(held) != epoch_millis(seen):
        raise OutOfRange(
            [
                Violation(
                    "since_revision",
                    f"revision {revision} is now another change than the one this subscriber "
                    "was sent (the registry's database was restored); watch from 0 to "
                    "resynchronise",
                )
            ]
        )


class ChangeFeed:
    """Wakes every watch stream of this process after a change; polls for other replicas'.

    A stream with nothing new also reads the registry's latest revision every head_check_s: one
    below what it sent, or another change at the revision it sent last, means the database was
    restored from a backup while the stream was open, and the stream ends with OutOfRange, as a
    resume from past the latest revision does, so its subscriber resynchronises instead of
    waiting for revisions it already has or skipping the ones given again.
    """

    def __init__(self, poll_s: float = 0.25, head_check_s: float = 5.0) -> None:
        self.poll_s = poll_s
        self.head_check_s = head_check_s
        # Set once, by the next change: every watcher waiting now wakes, and later ones wait on
        # a fresh Event. No lock, so a watcher cancelled at any point leaves nothing held (an
        # asyncio.Condition waited on with wait_for could be left locked by a watch cancelled
        # as its poll timed out, on Python 3.11: then every write hung after its commit).
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """End every watch stream at its next wait, now included (the server is draining)."""
        self._closed = True
        self._changed.set()

    def published(self, entity: Entity) -> Entity:
        """Tell the watchers that entity was saved; return it."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return entity

    async def watch(
        self,
        fetch: Callable[[int], Awaitable[list[Entity]]],
        head: Callable[[], Awaitable[int]],
        since_revision: int,
        ended: Callable[[], bool] = lambda: False,
        *,
        position: Position | None = None,
        since_time: datetime | None = None,
    ) -> AsyncIterator[Entity | int]:
        """Entities changed after since_revision, the replay's end revision, then live changes,
        until ended() says the call is over (checked at every pass: a cancel that the watch
        missed, as Python 3.11's wait_for can drop one inside PyMongo, left it polling MongoDB
        and holding its caller's stream slot until the next change).

        Invalid for a negative since_revision: no revision is below 0, which already replays
        everything. OutOfRange for a since_revision past the registry's latest: answering synced
        there would skip every change up to it, so the subscriber must resynchronise instead;
        and, given position and since_time (the update time of the change the subscriber holds
        at since_revision), for a since_revision that now names another change.
        """
        if since_revision < 0:
            raise Invalid(
                [
                    Violation(
                        "since_revision",
                        f"{since_revision} is negative; watch from 0 to replay everything",
                    )
                ]
            )
        latest = await head()
        if since_revision > latest:
            raise OutOfRange(
                [
                    Violation(
                        "since_revision",
                        f"{since_revision} is past the registry's latest revision {latest}; "
                        "watch from 0 to resynchronise",
                    )
                ]
            )
        if position is not None and since_time is not None and since_revision > 0:
            await _still_the_change(position, since_revision, since_time)
        last, last_time = since_revision, since_time
        synced = False
        checked = time.monotonic()
        while not ended():
            # Taken before the read: a write committed while it runs wakes the wait below.
            changed = self._changed
            changes = await fetch(last)
            for change in changes:
                last, last_time = change.revision, change.update_time
                yield change
            if not changes and not synced:
                synced = True
                yield last
            if not changes:
                if time.monotonic() - checked >= self.head_check_s:
                    checked = time.monotonic()
                    await _not_restored_behind(head, last)
                    if position is not None and last_time is not None and last > 0:
                        await _still_the_change(position, last, last_time)
                await self._wait_for_change(changed)
                if self._closed:
                    return

    async def _wait_for_change(self, changed: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_s):
                await changed.wait()
