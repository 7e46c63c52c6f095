"""Centre facts for the reports: a local copy of the registry's centres, and every place each
has been in."""

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

import grpc

from sanad.domain.places import Place
from sanad.domain.staff import MAX_STAFF
from sanad.errors import Unavailable
from sanad.registry_past import followed_by
from sanad.registry_watch import Watch, opener
from sanad.rpc.timestamps import from_timestamp
from sanad.v1 import registry_pb2, registry_pb2_grpc
from services.metrics.domain import CenterFacts, LicenceChange

log = logging.getLogger("sanad.metrics.directory")


class CenterDirectory(Protocol):
    """Where the metrics service learns which centres exist and their facts."""

    async def centers_ever_in(self, governorate_code: str) -> list[CenterFacts]:
        """The centres the registry has placed in the governorate, now or before, by id."""
        ...

    async def centers_by_id(self, center_ids: Iterable[str]) -> dict[str, CenterFacts]:
        """The facts of each named centre the registry knows, wherever it is now."""
        ...

    async def exists(self, center_id: str) -> bool:
        """Whether the registry has the centre, one registered a moment ago included."""
        ...


def facts_of(center: registry_pb2.Center) -> CenterFacts:
    """The registry's centre message as the facts the report needs."""
    history = [
        LicenceChange(
            time=event.time.ToDatetime(tzinfo=UTC),
            to_status=registry_pb2.LicenceStatus.Name(event.to_status).removeprefix(
                "LICENCE_STATUS_"
            ),
            expires_at=_expiry(event),
        )
        for event in center.licence.history
    ]
    return CenterFacts(
        center_id=center.id,
        name_ar=center.name_ar,
        name_en=center.name_en,
        wilayat_code=center.wilayat_code,
        governorate_code=center.governorate_code,
        omani_staff=counted_staff(center),
        licence_history=tuple(history),
        licence_expires_at=_expiry(center.licence),
    )


def counted_staff(center: registry_pb2.Center) -> int:
    """The centre's Omani staff as the figures count it: at most MAX_STAFF. The registry refuses
    more, but a centre stored before it did may hold any int32, and two of them summed past
    YearFigures' int32 (2,000,000,000 each made the report INTERNAL). Counted at the maximum,
    the report still answers with its completions and fees, and the leaderboard shows the same
    figure the report summed; the log names the centre to correct in the registry."""
    if center.omani_staff <= MAX_STAFF:
        return center.omani_staff
    log.warning(
        "centre %s has %d Omani staff in the registry, above its maximum: counted as %d",
        center.id,
        center.omani_staff,
        MAX_STAFF,
    )
    return MAX_STAFF


def _expiry(message: registry_pb2.Licence | registry_pb2.LicenceEvent) -> datetime | None:
    """The message's expires_at, None when unset."""
    return message.expires_at.ToDatetime(tzinfo=UTC) if message.HasField("expires_at") else None


class WatchedDirectory:
    """Every centre's facts and places, kept current by the registry's WatchCenters stream.

    A report reads the local copy, not the registry: no round trip per call. A call that arrives
    before the first replay has finished waits for it, up to `wait_s`, then is UNAVAILABLE, as
    it is once the stream has been reconnecting for longer than `outage_grace_s`. The replay
    passes through every change of every centre, so the copy knows each place a centre was in
    and since when (its change's time).
    """

    def __init__(self, channel: grpc.aio.Channel, wait_s: float, outage_grace_s: float) -> None:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self.stub = stub
        self.wait_s = wait_s
        self.facts: dict[str, CenterFacts] = {}
        self.ever_in: dict[str, set[str]] = {}
        self.watch = Watch(
            "centers",
            opener(stub.WatchCenters, registry_pb2.WatchCentersRequest),
            self._apply,
            self._forget,
            outage_grace_s,
        )

    @property
    def ready(self) -> bool:
        return self.watch.usable

    async def run(self) -> None:
        """Follow the registry forever, reconnecting with backoff."""
        await self.watch.run()

    async def centers_ever_in(self, governorate_code: str) -> list[CenterFacts]:
        await self._replayed()
        return [self.facts[key] for key in sorted(self.ever_in.get(governorate_code, ()))]

    async def centers_by_id(self, center_ids: Iterable[str]) -> dict[str, CenterFacts]:
        await self._replayed()
        return {key: self.facts[key] for key in center_ids if key in self.facts}

    async def exists(self, center_id: str) -> bool:
        """Whether the registry has the centre. The copy knows every centre but one registered
        a moment ago, which the watch stream has not brought yet (a helper's GetCenterStats
        right after RegisterCenter was NOT_FOUND 5 times in 10): an id the copy lacks is asked
        of the registry itself."""
        if await self.centers_by_id([center_id]):
            return True
        try:
            await self.stub.GetCenter(
                registry_pb2.GetCenterRequest(id=center_id), timeout=self.wait_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return False
            raise Unavailable(
                f"the registry did not say whether centre {center_id!r} exists"
                f" ({error.code().name})"
            ) from None
        return True

    async def _replayed(self) -> None:
        if self.watch.usable:
            return
        try:
            async with asyncio.timeout(self.wait_s):
                await self.watch.replayed.wait()
        except TimeoutError:
            raise Unavailable(
                "the registry's centres are not loaded yet, or the registry has been out of"
                " reach for longer than its grace"
            ) from None

    def _forget(self) -> None:
        """Before a replay from the start: the restored registry says again what it holds."""
        self.facts.clear()
        self.ever_in.clear()

    def _apply(self, center: registry_pb2.Center) -> None:
        placements = self.facts[center.id].placements if center.id in self.facts else ()
        here = Place(center.governorate_code, center.wilayat_code)
        placements = followed_by(placements, from_timestamp(center.update_time), here)
        self.facts[center.id] = replace(facts_of(center), placements=placements)
        self.ever_in.setdefault(center.governorate_code, set()).add(center.id)
