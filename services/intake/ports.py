"""What intake's use cases need of the registry's copy, the broker and the database (STYLE
point 3): the classes that provide them live beside, and unit tests pass fakes."""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sanad.domain.submissions import CenterView, ServiceView


class Snapshot(Protocol):
    centers: dict[str, CenterView]
    services: dict[str, ServiceView]

    @property
    def ready(self) -> bool: ...


class Lookup(Protocol):
    """registry_lookup.RegistryLookup: a centre and a service as the registry has them now."""

    async def current(
        self,
        center_id: str,
        service_code: str,
        timeout_s: float | None,
        caller: str,
    ) -> tuple[CenterView | None, ServiceView | None] | None: ...


class Publisher(Protocol):
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_type: str,
        message_id: str,
        timeout_s: float | None = None,
    ) -> None: ...


class ConfirmingPublisher(Protocol):
    """A publish that runs on_confirm when the broker confirms it, also after its caller
    stopped waiting (sanad.amqp.packing.PackingPublisher provides it)."""

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
    ) -> None: ...


class Store(Protocol):
    async def claim_request(
        self,
        key: str,
        transaction_id: str,
        fingerprint: str,
        submit_time: datetime,
        timeout_s: float | None = None,
        *,
        registry: Mapping[str, Any] | None = None,
        claimed_late: Callable[[], None] | None = None,
    ) -> dict[str, Any]: ...

    async def find_request(
        self, key: str, timeout_s: float | None = None
    ) -> dict[str, Any] | None: ...
