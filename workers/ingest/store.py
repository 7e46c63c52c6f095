"""The ingest worker's MongoDB writes: submissions as every worker stores them
(workers.storage.submissions), and status changes and ratings applied to stored transactions,
in one transaction per micro-batch; the indexes the workers need."""

import logging
from collections.abc import Mapping, Sequence

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from sanad import records
from sanad import rollups as contract
from sanad.amqp.verdicts import Retry
from sanad.retired_indexes import drop_retired
from sanad.security import audit
from workers.ingest.changes import (
    REFUSED_CHANGES,
    Applied,
    Change,
    ChangeOutcome,
    apply_change,
)
from workers.storage.atomic import ConcurrentUpdate
from workers.storage.rollups import RollupIncrements, prepare_outcome_series
from workers.storage.submissions import Document, SubmissionStore

log = logging.getLogger("sanad.ingest")

# Fields a change may rewrite on a stored transaction.
_CHANGED_FIELDS = (
    "status",
    "history",
    "applied_changes",
    REFUSED_CHANGES,
    "finish_time",
    "paused_seconds",
    "sla_elapsed_seconds",
    "fee_refund_due",
    "rating",
    "rating_time",
    "sequence",
)


class IngestStore(SubmissionStore):
    """The submission store, with status changes and ratings applied in the same transaction,
    and the indexes: the ingest worker's MongoDB role is the one that builds them."""

    async def ensure_indexes(self) -> None:
        """The listing and rollup indexes, and that of intake's notes still waiting; and no
        index an earlier version left behind on the collections this worker writes most."""
        await self.transactions.create_index(records.LISTING_INDEX)
        # For intake, whose role builds no index: its sweep of the notes still waiting.
        await self.db[records.UNSENT_COLLECTION].create_index(records.UNSENT_INDEX, sparse=True)
        for collection, keys in contract.INDEXES:
            await self.db[collection].create_index(keys)
        await drop_retired(self.db, (records.COLLECTION, audit.COLLECTION))

    async def recent_places(self, since_day: str) -> set[tuple[str, str, str]]:
        """The (governorate, wilayat, agency) of the rollups of since_day ("YYYY-MM-DD") and
        after: where the transactions that may still finish were submitted. One query per
        wilayat that has a yearly rollup, each on the rollups' (wilayat_code, day) index."""
        places: set[tuple[str, str, str]] = set()
        for wilayat in await self.db[contract.YEARLY].distinct("wilayat_code"):
            pipeline: list[Document] = [
                {"$match": {"wilayat_code": wilayat, "day": {"$gte": since_day}}},
                {"$group": {"_id": {"g": "$governorate_code", "a": "$agency_code"}}},
            ]
            async for row in await self.rollups.aggregate(pipeline):
                place = (row["_id"].get("g"), wilayat, row["_id"].get("a"))
                if all(isinstance(label, str) and label for label in place):
                    places.add(place)
        return places

    async def record(
        self,
        documents: Sequence[Document],
        changes: Sequence[Change],
        audits: Mapping[str, Document] | None = None,
    ) -> list[ChangeOutcome]:
        """Store submissions (with their audit events, by transaction id), then apply changes
        in order, in one transaction.

        Returns one outcome per change: Applied (applied, a duplicate of one applied, or
        superseded by a newer step), Dead (illegal for the stored state) or Retry (its
        transaction is not stored yet, or an earlier change of it is missing).
        """

        async def body(
            session: AsyncClientSession,
        ) -> tuple[list[ChangeOutcome], RollupIncrements]:
            increments = RollupIncrements()
            if documents:
                await self._insert(documents, increments, session, audits)
            outcomes = await self._apply(changes, increments, session) if changes else []
            await self._count(increments, session)
            return outcomes, increments

        outcomes, committed = await self.in_transaction("record", body)
        committed.observe()
        return outcomes

    async def _apply(
        self, changes: Sequence[Change], increments: RollupIncrements, session: AsyncClientSession
    ) -> list[ChangeOutcome]:
        ids = list({c.transaction_id for c in changes})
        docs = {d["_id"]: d for d in await self.find_by_ids(ids, session)}
        revisions = {key: doc.get("revision", 0) for key, doc in docs.items()}
        outcomes: list[ChangeOutcome] = []
        touched: set[str] = set()
        for change in changes:
            doc = docs.get(change.transaction_id)
            if doc is None:
                outcomes.append(
                    Retry("unknown-transaction", f"transaction {change.transaction_id} not stored")
                )
                continue
            # Its outcome and rating series exist before they are first counted (the batch
            # worker, not this one, may have stored it).
            prepare_outcome_series(doc)
            sequence = doc.get("sequence", 0)
            applied = apply_change(doc, change, increments)
            if applied is Applied.APPLIED or doc.get("sequence", 0) != sequence:
                touched.add(doc["_id"])
            if applied is Applied.SUPERSEDED:
                log.warning(
                    "status change older than the last step: superseded, not applied",
                    extra={"transaction_id": doc["_id"], "change_id": change.change_id},
                )
            outcomes.append(applied)
        await self._save(docs, revisions, touched, session)
        return outcomes

    async def _save(
        self,
        docs: dict[str, Document],
        revisions: dict[str, int],
        touched: set[str],
        session: AsyncClientSession,
    ) -> None:
        """Write changed documents, guarded by revision so a concurrent writer is noticed."""
        if not touched:
            return
        operations = []
        for key in touched:
            doc = docs[key]
            fields = {f: doc[f] for f in _CHANGED_FIELDS if f in doc}
            fields["revision"] = revisions[key] + 1
            previous = revisions[key] if revisions[key] else {"$in": [0, None]}
            operations.append(UpdateOne({"_id": key, "revision": previous}, {"$set": fields}))
        result = await self.transactions.bulk_write(operations, ordered=False, session=session)
        if result.matched_count != len(operations):
            raise ConcurrentUpdate("a transaction changed under us; retrying the micro-batch")
