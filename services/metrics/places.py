"""Which governorates and wilayats exist, as the registry serves them: what a report may name.

The registry owns Oman's reference list (ListGovernorates). Metrics fetches it on first use and
keeps it; a code it does not hold is looked up again at most every `refresh_s`, so a place added
by a registry upgrade is found while a stream of bad codes costs the registry one call a minute.
Until the list has been fetched once, a registry that does not answer makes the call
UNAVAILABLE, never a wrong answer.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc

from sanad.errors import Invalid, Unavailable, Violation
from sanad.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger("sanad.metrics.places")


class KnownPlaces(Protocol):
    """Refuses a governorate or wilayat code the registry does not know (Invalid)."""

    async def check_governorate(self, code: str) -> None: ...

    async def check_wilayat(self, code: str) -> None: ...


@dataclass(frozen=True)
class Places:
    """Wilayat codes by governorate code."""

    wilayats: Mapping[str, frozenset[str]]

    def has_governorate(self, code: str) -> bool:
        return code in self.wilayats

    def has_wilayat(self, code: str) -> bool:
        return any(code in codes for codes in self.wilayats.values())


def places_of(reply: registry_pb2.ListGovernoratesResponse) -> Places:
    return Places({g.code: frozenset(w.code for w in g.wilayats) for g in reply.governorates})


class RegistryPlaces:
    """The registry's governorates and wilayats, fetched once and refreshed on a miss."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout_s: float,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.places: Places | None = None
        self.fetched_at = 0.0
        self.lock = asyncio.Lock()

    async def check_governorate(self, code: str) -> None:
        if not await self._known(lambda places: places.has_governorate(code)):
            raise Invalid([Violation("governorate_code", f"unknown governorate {code!r}")])

    async def check_wilayat(self, code: str) -> None:
        if not await self._known(lambda places: places.has_wilayat(code)):
            raise Invalid([Violation("wilayat_code", f"unknown wilayat {code!r}")])

    async def _known(self, found: Callable[[Places], bool]) -> bool:
        if self.places is not None and (found(self.places) or not self._stale()):
            return found(self.places)
        async with self.lock:
            if self.places is None or (not found(self.places) and self._stale()):
                await self._fetch()
        assert self.places is not None
        return found(self.places)

    def _stale(self) -> bool:
        return self.clock() - self.fetched_at >= self.refresh_s

    async def _fetch(self) -> None:
        """The list from the registry; a failure keeps the list held, or is UNAVAILABLE."""
        try:
            reply = await self.stub.ListGovernorates(
                registry_pb2.ListGovernoratesRequest(), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if self.places is None:
                raise Unavailable(
                    f"the registry's governorates are not loaded yet ({error.code().name})"
                ) from None
            log.warning("registry ListGovernorates failed (%s); kept the list held", error.code())
        else:
            self.places = places_of(reply)
        self.fetched_at = self.clock()
