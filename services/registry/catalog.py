"""Use cases of the e-service catalogue: add, read, list, update to a new version, retire."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from sanad.deadline import Deadline
from sanad.errors import NotFound, PermissionDenied, PreconditionFailed, check
from sanad.paging import Page, PageRequest, decode_token, page_size
from sanad.security.identity import Identity, Role
from sanad.security.policy import may_change_catalogue
from services.registry.domain import CatalogService, CatalogStatus
from services.registry.listing import SERVICE_PAGE_DEFAULT, SERVICE_PAGE_MAX, ServiceFilter
from services.registry.masks import apply_service_mask, service_mask
from services.registry.operations import (
    ChangeFeed,
    Store,
    check_filter_codes,
    require,
    stored_now,
)
from services.registry.races import as_it_stands
from services.registry.reference import ReferenceData
from services.registry.validation import (
    agency_prefix_violations,
    another_agency_violations,
    validate_change,
    validate_service,
)

PAGE_KIND = "catalog"


class CatalogOperations:
    """Every change saves at the next revision, so watchers of the catalogue see it."""

    def __init__(
        self, store: Store, reference: ReferenceData, feed: ChangeFeed, licensing_agency: str
    ) -> None:
        self.store = store
        self.reference = reference
        self.feed = feed
        self.licensing_agency = licensing_agency

    async def add(
        self, service: CatalogService, identity: Identity | None = None
    ) -> CatalogService:
        """Publish a new service; a ministry's code begins with its agency's, and nobody's
        reads as another agency's (admins may name a code with no agency's prefix)."""
        validate_service(service)
        if identity is not None and identity.role is Role.MINISTRY:
            check(agency_prefix_violations(service))
        self.reference.check_agency(service.agency_code)
        check(another_agency_violations(service, (a.code for a in self.reference.agencies)))
        now = stored_now()
        fresh = replace(
            service,
            version=1,
            status=CatalogStatus.ACTIVE,
            revision=0,
            create_time=now,
            update_time=now,
        )
        return self.feed.published(await self.store.save_service(fresh, new=True))

    async def get(self, code: str, field: str = "code") -> CatalogService:
        service = await self.store.get_service(require(code, field))
        if service is None:
            raise NotFound(f"catalogue service {code!r} not found")
        return service

    async def list_page(self, wanted: ServiceFilter, size: int, token: str) -> Page[CatalogService]:
        check_filter_codes({"agency_code": wanted.agency_code})
        page = PageRequest(
            page_size(size, SERVICE_PAGE_DEFAULT, SERVICE_PAGE_MAX),
            decode_token(PAGE_KIND, wanted, token),
        )
        return await self.store.list_services(wanted, page)

    async def update(
        self, patch: CatalogService, paths: list[str], identity: Identity, *, deadline: Deadline
    ) -> CatalogService:
        """Change the masked fields of an active service; it moves to its next version. A mask
        whose values the service holds already changes nothing, and the service is answered as
        it stands: a retried update makes no second version.

        The policy table saw only the agency the request names; a ministry may change only a
        service its agency owns (the mask cannot change agency_code).
        """
        mask = service_mask(paths)

        async def attempt() -> CatalogService:
            current = await self.get(patch.code, "service.code")
            self._check_owner(identity, current)
            _check_active(current, "update")
            patched = apply_service_mask(current, patch, mask)
            if patched == current:
                return current
            changed = replace(patched, version=current.version + 1, update_time=stored_now())
            validate_change(validate_service, current, changed)
            return await self.store.save_service(changed, new=False)

        return await self._saved(attempt, patch.code, deadline)

    async def retire(self, code: str, *, deadline: Deadline) -> CatalogService:
        """Withdraw an active service from the catalogue."""

        async def attempt() -> CatalogService:
            current = await self.get(code)
            _check_active(current, "retire")
            changed = replace(current, status=CatalogStatus.RETIRED, update_time=stored_now())
            return await self.store.save_service(changed, new=False)

        return await self._saved(attempt, code, deadline)

    def watch(
        self,
        since_revision: int,
        ended: Callable[[], bool] = lambda: False,
        since_time: datetime | None = None,
    ) -> AsyncIterator[CatalogService | int]:
        """Services changed after since_revision, the replay's end revision, then live changes,
        until ended(); since_time as CenterOperations.watch's."""
        return self.feed.watch(
            self.store.service_changes_after,
            self.store.head_revision,
            since_revision,
            ended,
            position=partial(self.store.change_time, "catalog"),
            since_time=since_time,
        )

    async def _saved(
        self, attempt: Callable[[], Awaitable[CatalogService]], code: str, deadline: Deadline
    ) -> CatalogService:
        """The service attempt() saved; a change that raced another is judged again on the
        service as it stands (the catalogue RPCs carry no expected revision), while the caller's
        deadline leaves time for another try."""
        what = f"catalogue service {code!r}"
        saved = await as_it_stands(attempt, what, retry=True, deadline=deadline)
        return self.feed.published(saved)

    def _check_owner(self, identity: Identity, service: CatalogService) -> None:
        if not may_change_catalogue(identity, service.agency_code, self.licensing_agency):
            raise PermissionDenied(
                f"{identity.role} {identity.subject!r} may not change catalogue service "
                f"{service.code!r} of agency {service.agency_code!r}"
            )


def _check_active(service: CatalogService, verb: str) -> None:
    if service.status is CatalogStatus.RETIRED:
        raise PreconditionFailed(f"cannot {verb} catalogue service {service.code!r}: it is retired")
