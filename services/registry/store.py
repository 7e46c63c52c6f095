"""MongoDB storage of the registry: entities, the revision counter and the change log.

Every change runs in one MongoDB transaction that increments the revision
counter, writes the entity, appends the change and inserts the audited call's OK
event (sanad.security.carried): a change is stored exactly when its event is.
Concurrent writers conflict on the counter document, so revisions commit in
order and the log has no gaps a watcher could skip.
"""

from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any

from bson import decode
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from sanad.errors import Aborted, AlreadyExists, Unavailable
from sanad.lost_sessions import transaction_session
from sanad.mongo import bounded
from sanad.paging import Page, PageRequest
from sanad.retired_indexes import drop_retired
from sanad.security import audit
from sanad.security.carried import CarriedEvent
from services.registry.documents import (
    Document,
    all_of,
    center_from_doc,
    center_query,
    center_to_doc,
    service_from_doc,
    service_query,
    service_to_doc,
)
from services.registry.domain import CatalogService, CatalogStatus, Center
from services.registry.licence_numbers import spellings_pattern
from services.registry.listing import CenterFilter, ServiceFilter
from services.registry.operations import SessionCheck
from services.registry.search import search_text

REVISION_ID = "registry_revision"
# A watch reads the change log this many changes at a time, and stops a read early once the
# changes it read pass REPLAY_BYTES of BSON: a catalogue service may list 500 required documents
# of 500 characters and a centre 500 licence events, so 500 such changes would be about 150 MB
# held at once by each stream replaying them. The bound is of bytes read: decoded, the changes
# take a few times that, and the driver may hold up to CHANGES_PER_BATCH more, the server's
# batch, when a read stops (a few tens of MB at most, against hundreds).
CHANGES_PER_READ = 500
CHANGES_PER_BATCH = 50
REPLAY_BYTES = 4 * 1024 * 1024


class RegistryStore:
    """Centres, catalogue services and their change log in one database."""

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: AsyncDatabase[Document],
        timeout_s: float = 5.0,
        replay_bytes: int = REPLAY_BYTES,
    ) -> None:
        self.client = client
        self.db = db
        # Bounds every public call, a transaction's retries included (SANAD_MONGO_TIMEOUT_MS).
        self.timeout_s = timeout_s
        self.centers = db["registry_centers"]
        self.catalog = db["registry_catalog"]
        self.changes = db["registry_changes"]
        self.replay_bytes = replay_bytes
        self.counters = db["registry_counters"]
        self.audit_log = db[audit.COLLECTION]
        # Set once ensure_indexes has run: until then nothing enforces unique licence numbers.
        self.indexed = False

    @bounded
    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need; safe to repeat."""
        await self.centers.create_index("licence.number", unique=True)
        # A place's centres in page order (_id), so every page of a governorate's or a wilayat's
        # listing reads only that place's entries after the page bound.
        await self.centers.create_index([("governorate_code", ASCENDING), ("_id", ASCENDING)])
        await self.centers.create_index([("wilayat_code", ASCENDING), ("_id", ASCENDING)])
        await self.centers.create_index("offered_service_codes")
        await self.centers.create_index([("licence.status", ASCENDING), ("licence.expires_at", 1)])
        await self.catalog.create_index("agency_code")
        await self.changes.create_index([("kind", ASCENDING), ("_id", ASCENDING)])
        await drop_retired(self.db, (self.centers.name,))
        await self._refresh_search_text()
        self.indexed = True

    async def _refresh_search_text(self) -> None:
        """Rewrite the name-search text of centres saved under an earlier search rule
        (search.normalise), so a query finds every centre by what its names show, not only the
        centres saved since the rule changed (a no-op update saves nothing, so none could be
        made to). The names are matched again as the text is written: a centre renamed
        meanwhile keeps what its own save wrote."""
        names = {"name_ar": 1, "name_en": 1, "search": 1}
        async for doc in self.centers.find({}, names):
            wanted = search_text(doc.get("name_ar", ""), doc.get("name_en", ""))
            if doc.get("search") != wanted:
                same_names = {key: doc.get(key) for key in ("_id", "name_ar", "name_en")}
                await self.centers.update_one(same_names, {"$set": {"search": wanted}})

    @bounded
    async def get_center(self, center_id: str) -> Center | None:
        doc = await self.centers.find_one({"_id": center_id})
        return center_from_doc(doc) if doc else None

    @bounded
    async def get_service(self, code: str) -> CatalogService | None:
        doc = await self.catalog.find_one({"_id": code})
        return service_from_doc(doc) if doc else None

    @bounded
    async def save_center(
        self, center: Center, *, new: bool, check: SessionCheck | None = None
    ) -> Center:
        """Insert or replace a centre at the next revision; AlreadyExists on a used licence.

        A new centre waits for the unique licence-number index (Unavailable until it exists):
        two registered meanwhile under one number would keep the index from ever being built.

        `check` runs first inside the transaction, with its session: what it reads of the
        catalogue is what the centre is saved against. Every registry change takes the next
        revision from one counter, so a change committed before it shows there, and one
        committed meanwhile conflicts with this transaction, which is then run again.
        """
        if new and not self.indexed:
            raise Unavailable("the registry is still preparing its database; retry shortly")

        async def write(session: AsyncClientSession, revision: int) -> Document:
            if check is not None:
                await check(session)
            doc = center_to_doc(center)
            doc["revision"] = revision
            if new:
                await self._refuse_in_any_case(center.licence.number, session)
                await self.centers.insert_one(doc, session=session)
            else:
                await self._replace(self.centers, doc, center.revision, session)
            return doc

        try:
            # Every centre RPC answers the saved centre as `center`; RegisterCenter's event
            # names its new id and its licence number as kept (the policy's result fields),
            # known before the transaction.
            results = {"center.id": center.id, "center.licence.number": center.licence.number}
            doc = await self._commit("center", center.id, write, results)
        except DuplicateKeyError as error:
            holder = await self._holder_of(center.licence.number)
            raise AlreadyExists(
                f"a centre with licence number {center.licence.number!r} is already registered"
                + (f" (centre {holder})" if holder else "")
            ) from error
        return center_from_doc(doc)

    async def _holder_of(self, number: str) -> str | None:
        """The id of the centre that holds the licence number in any spelling, for the answer
        to a registration refused for it: a client whose first RegisterCenter succeeded but
        whose answer was lost learns the id it was given (those who may register may read every
        centre). None when it cannot be read now."""
        same = {"$regex": spellings_pattern(number), "$options": "i"}
        try:
            found = await self.centers.find_one({"licence.number": same}, {"_id": 1})
        except PyMongoError:
            return None
        return None if found is None else str(found["_id"])

    async def _refuse_in_any_case(self, number: str, session: AsyncClientSession) -> None:
        """DuplicateKeyError when a centre holds the licence number in another case or spelling.
        New numbers are kept in one spelling (licence_numbers.canonical), so the unique index
        refuses those; centres registered before that may hold a lower-case one ("da-1") or
        Arabic-Indic digits, which the index would not see as "DA-1"."""
        same = {"$regex": spellings_pattern(number), "$options": "i"}
        if await self.centers.find_one({"licence.number": same}, {"_id": 1}, session=session):
            raise DuplicateKeyError(f"licence number {number!r} is taken in another spelling")

    @bounded
    async def save_service(self, service: CatalogService, *, new: bool) -> CatalogService:
        """Insert or replace a catalogue service at the next revision."""

        async def write(session: AsyncClientSession, revision: int) -> Document:
            doc = service_to_doc(service)
            doc["revision"] = revision
            if new:
                await self.catalog.insert_one(doc, session=session)
            else:
                await self._replace(self.catalog, doc, service.revision, session)
            return doc

        try:
            doc = await self._commit("catalog", service.code, write)
        except DuplicateKeyError as error:
            raise AlreadyExists(f"catalogue service {service.code!r} already exists") from error
        return service_from_doc(doc)

    @bounded
    async def list_centers(
        self, wanted: CenterFilter, now: datetime, page: PageRequest
    ) -> Page[Center]:
        """One page of matching centres by id; effective licence status judged at now."""
        docs = await self._page(self.centers, center_query(wanted, now), page)
        return Page([center_from_doc(d) for d in docs[: page.size]], _next(docs, page))

    @bounded
    async def list_services(self, wanted: ServiceFilter, page: PageRequest) -> Page[CatalogService]:
        """One page of matching catalogue services by code."""
        docs = await self._page(self.catalog, service_query(wanted), page)
        return Page([service_from_doc(d) for d in docs[: page.size]], _next(docs, page))

    @bounded
    async def existing_service_codes(
        self, codes: Iterable[str], session: AsyncClientSession | None = None
    ) -> dict[str, CatalogStatus]:
        """Those of codes that name a catalogue service, each with the service's status (as
        the session's transaction sees them, with one)."""
        query = {"_id": {"$in": list(codes)}}
        cursor = self.catalog.find(query, projection={"_id": 1, "status": 1}, session=session)
        return {doc["_id"]: CatalogStatus(doc["status"]) for doc in await cursor.to_list()}

    async def _page(
        self, collection: AsyncCollection[Document], query: Document, page: PageRequest
    ) -> list[Document]:
        # One extra document tells whether another page follows, so the last page has no token.
        if page.after:
            query = all_of(query, {"_id": {"$gt": page.after}})
        return await collection.find(query).sort("_id", ASCENDING).limit(page.size + 1).to_list()

    async def _replace(
        self,
        collection: AsyncCollection[Document],
        doc: Document,
        loaded_revision: int,
        session: AsyncClientSession,
    ) -> None:
        # Only over the revision the caller loaded: a concurrent change is never overwritten.
        result = await collection.replace_one(
            {"_id": doc["_id"], "revision": loaded_revision}, doc, session=session
        )
        if result.matched_count != 1:
            raise Aborted(f"{doc['_id']!r} changed meanwhile; read it again and retry")

    @bounded
    async def center_changes_after(
        self, revision: int, limit: int = CHANGES_PER_READ
    ) -> list[Center]:
        """Centres as they stood after each change past a revision, oldest first: at most
        limit, and no more once they pass replay_bytes (always at least one)."""
        return [center_from_doc(d) for d in await self._changes_after("center", revision, limit)]

    @bounded
    async def service_changes_after(
        self, revision: int, limit: int = CHANGES_PER_READ
    ) -> list[CatalogService]:
        """Catalogue services as they stood after each change past a revision, oldest first,
        bounded as center_changes_after's."""
        return [service_from_doc(d) for d in await self._changes_after("catalog", revision, limit)]

    async def _changes_after(self, kind: str, revision: int, limit: int) -> list[Document]:
        # Read raw, so a change's size is known before it is decoded.
        codecs = self.changes.codec_options
        raw = self.changes.with_options(
            codec_options=codecs.with_options(document_class=RawBSONDocument)
        )
        cursor = (
            raw.find({"kind": kind, "_id": {"$gt": revision}})
            .sort("_id", 1)
            .limit(limit)
            .batch_size(CHANGES_PER_BATCH)
        )
        docs: list[Document] = []
        size = 0
        try:
            async for change in cursor:
                docs.append(decode(change.raw, codecs)["doc"])
                size += len(change.raw)
                if size >= self.replay_bytes:
                    break
        finally:
            await cursor.close()
        return docs

    @bounded
    async def change_time(self, kind: str, revision: int) -> datetime | None:
        """The update time of the change of kind ("center", "catalog") at revision, as its
        watch streams sent it; None when no change of the kind is there."""
        found = await self.changes.find_one({"_id": revision, "kind": kind}, {"doc.update_time": 1})
        return None if found is None else found["doc"].get("update_time")

    @bounded
    async def head_revision(self) -> int:
        """The latest registry revision committed; 0 before the first change."""
        doc = await self.counters.find_one({"_id": REVISION_ID})
        return int(doc["value"]) if doc else 0

    async def _commit(
        self,
        kind: str,
        key: str,
        write: Callable[[AsyncClientSession, int], Coroutine[Any, Any, Document]],
        results: Mapping[str, str] | None = None,
    ) -> Document:
        async def body(session: AsyncClientSession) -> Document:
            counter = await self.counters.find_one_and_update(
                {"_id": REVISION_ID},
                {"$inc": {"value": 1}},
                upsert=True,
                session=session,
                return_document=ReturnDocument.AFTER,
            )
            assert counter is not None  # upsert=True always returns the document
            revision = int(counter["value"])
            doc = await write(session, revision)
            await self.changes.insert_one(
                {"_id": revision, "kind": kind, "key": key, "doc": doc}, session=session
            )
            return doc

        event = CarriedEvent(self.audit_log, results or {})
        async with transaction_session(self.client) as session:
            return await event.run(session, body)


def _next(docs: list[Document], page: PageRequest) -> str:
    return str(docs[page.size - 1]["_id"]) if len(docs) > page.size else ""
