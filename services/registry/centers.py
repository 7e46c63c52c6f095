"""Use cases of centres: register, read, list, update, licence transitions, services."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from sanad.deadline import Deadline
from sanad.domain.ids import new_id
from sanad.errors import Invalid, NotFound, Violation
from sanad.paging import Page, PageRequest, decode_token, page_size
from services.registry.domain import Center, Licence, LicenceAction, transition
from services.registry.licence_numbers import canonical
from services.registry.listing import (
    CENTER_PAGE_DEFAULT,
    CENTER_PAGE_MAX,
    CENTER_QUERY_MAX,
    CenterFilter,
)
from services.registry.masks import apply_center_mask, center_mask
from services.registry.operations import (
    ChangeFeed,
    Store,
    check_filter_codes,
    check_revision,
    check_services,
    require,
    stored_now,
)
from services.registry.races import as_it_stands
from services.registry.reference import ReferenceData
from services.registry.search import normalise
from services.registry.validation import validate_center, validate_change, validate_reason

PAGE_KIND = "centers"
# The update mask's paths that move a centre, and so have its place checked.
PLACE_PATHS = frozenset({"governorate_code", "wilayat_code"})


class CenterOperations:
    """Load, apply the rules, save at the next revision, wake the watchers."""

    def __init__(self, store: Store, reference: ReferenceData, feed: ChangeFeed) -> None:
        self.store = store
        self.reference = reference
        self.feed = feed

    async def register(self, center: Center) -> Center:
        """A new centre, its licence in APPLIED. The licence number is kept in its canonical
        form (upper case, ASCII digits and dashes: licence_numbers), as the seed and the README
        write them, so the unique index sees "da-1", "DA-1" in Arabic-Indic digits and
        fullwidth "DA-1" as one."""
        center = replace(center, licence=Licence(number=canonical(center.licence.number)))
        validate_center(center)
        self.reference.check_place(center.governorate_code, center.wilayat_code)
        now = stored_now()
        fresh = replace(
            center,
            id=new_id(),
            offered_service_codes=_once(center.offered_service_codes),
            blocked_service_codes=_once(center.blocked_service_codes),
            revision=0,
            create_time=now,
            update_time=now,
        )
        # The services are checked in the transaction that saves the centre: checked before
        # it, a service retired in between was offered anyway (a registry helper's race, 19
        # times in 20).
        saved = await self.store.save_center(
            fresh,
            new=True,
            check=lambda session: check_services(
                self.store,
                center.offered_service_codes,
                center.blocked_service_codes,
                prefix="center.",
                session=session,
            ),
        )
        return self.feed.published(saved)

    async def get(self, center_id: str, field: str = "id") -> Center:
        center = await self.store.get_center(require(center_id, field))
        if center is None:
            raise NotFound(f"centre {center_id!r} not found")
        return center

    async def list_page(self, wanted: CenterFilter, size: int, token: str) -> Page[Center]:
        if len(wanted.query) > CENTER_QUERY_MAX:
            raise Invalid([Violation("query", f"must be at most {CENTER_QUERY_MAX} characters")])
        if any(ord(character) < 0x20 for character in wanted.query):
            # Names hold no control characters, and MongoDB refuses NUL in a $regex.
            raise Invalid([Violation("query", "must not contain control characters")])
        if wanted.query.strip() and not normalise(wanted.query):
            # Diacritics, tatweel or joiners alone: searched as nothing, it listed every centre.
            raise Invalid(
                [Violation("query", "must hold a letter or digit besides diacritics and tatweel")]
            )
        check_filter_codes(
            {
                "governorate_code": wanted.governorate_code,
                "wilayat_code": wanted.wilayat_code,
                "service_code": wanted.service_code,
            }
        )
        page = PageRequest(
            page_size(size, CENTER_PAGE_DEFAULT, CENTER_PAGE_MAX),
            decode_token(PAGE_KIND, wanted, token),
        )
        return await self.store.list_centers(wanted, stored_now(), page)

    async def update(
        self,
        patch: Center,
        paths: list[str],
        expected_revision: int | None = None,
        *,
        deadline: Deadline,
    ) -> Center:
        """Change the masked fields; the result is validated, and its place re-checked when the
        mask moves it (PLACE_PATHS): a centre whose stored wilayat the reference data no longer
        lists still changes its other fields, as validate_change keeps a tightened rule from
        stopping an entity stored before it.

        With expected_revision, only a centre still at that revision changes (Aborted else);
        without, the change applies to the centre as it stands, whatever changed meanwhile. A
        mask whose values the centre holds already changes nothing, and the centre is answered
        as it stands, at its revision, as a catalogue service is (a retry, or a tool that sends
        every field, made a new revision and woke every watcher for nothing).
        """
        mask = center_mask(paths)

        async def attempt() -> Center:
            current = await self.get(patch.id, "center.id")
            check_revision(current, expected_revision, f"centre {current.id!r}")
            patched = apply_center_mask(current, patch, mask)
            changed = replace(patched, update_time=stored_now())
            validate_change(validate_center, current, changed)
            if mask & PLACE_PATHS:
                self.reference.check_place(changed.governorate_code, changed.wilayat_code)
            if patched == current:
                return current  # judged as a change, saved as none
            return await self.store.save_center(changed, new=False)

        return await self._saved(attempt, patch.id, expected_revision, deadline)

    async def transition_licence(
        self, center_id: str, action: LicenceAction, actor: str, reason: str, *, deadline: Deadline
    ) -> Center:
        """Move the licence and record who did it and why (DESIGN section 3: a reason is due).

        The move is judged on the licence as it stands: one that changed meanwhile is reloaded
        and judged again, so two racing suspensions make one suspension and one refusal.
        """
        validate_reason(reason)

        async def attempt() -> Center:
            center = await self.get(center_id, "center_id")
            now = stored_now()
            licence = transition(center.licence, action, actor, reason, now)
            changed = replace(center, licence=licence, update_time=now)
            return await self.store.save_center(changed, new=False)

        return await self._saved(attempt, center_id, None, deadline)

    async def set_services(
        self,
        center_id: str,
        offered: tuple[str, ...],
        blocked: tuple[str, ...],
        expected_revision: int | None = None,
        *,
        deadline: Deadline,
    ) -> Center:
        """Replace the offered and blocked services; every code must be in the catalogue.

        With expected_revision, only a centre still at that revision changes (Aborted else);
        without, the lists are replaced whatever the centre holds. Lists the centre holds
        already change nothing: the centre is answered as it stands, at its revision.
        """

        async def attempt() -> Center:
            center = await self.get(center_id, "center_id")
            check_revision(center, expected_revision, f"centre {center_id!r}")
            lists = replace(
                center, offered_service_codes=_once(offered), blocked_service_codes=_once(blocked)
            )
            if lists == center:
                return center
            changed = replace(lists, update_time=stored_now())
            # Checked as sent, so a violation's index points into the caller's own list, and
            # in the transaction that saves the centre (as register's).
            return await self.store.save_center(
                changed,
                new=False,
                check=lambda session: check_services(
                    self.store,
                    offered,
                    blocked,
                    offered_before=center.offered_service_codes,
                    session=session,
                ),
            )

        return await self._saved(attempt, center_id, expected_revision, deadline)

    async def _saved(
        self,
        attempt: Callable[[], Awaitable[Center]],
        center_id: str,
        expected: int | None,
        deadline: Deadline,
    ) -> Center:
        """The centre attempt() saved, retried on a race unless the caller named a revision (and
        only while the caller's deadline leaves time for another try)."""
        what = f"centre {center_id!r}"
        saved = await as_it_stands(attempt, what, retry=expected is None, deadline=deadline)
        return self.feed.published(saved)

    def watch(
        self,
        since_revision: int,
        ended: Callable[[], bool] = lambda: False,
        since_time: datetime | None = None,
    ) -> AsyncIterator[Center | int]:
        """Centres changed after since_revision, the replay's end revision, then live changes,
        until ended(); since_time is the update time of the change the subscriber holds at
        since_revision (ChangeFeed.watch)."""
        return self.feed.watch(
            self.store.center_changes_after,
            self.store.head_revision,
            since_revision,
            ended,
            position=partial(self.store.change_time, "center"),
            since_time=since_time,
        )


def _once(codes: tuple[str, ...]) -> tuple[str, ...]:
    """Each code once, in the order first given."""
    return tuple(dict.fromkeys(codes))
