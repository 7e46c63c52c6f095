"""The request ids of a batch's items: the same request id of one submitter always gives the
same transaction (DESIGN invariant 3), across its batches as within one.

Each chunk's items with a request id are looked up in `intake_requests` before the chunk is
stored. An item whose request id no transaction holds yet claims it in the same MongoDB
transaction that stores it (so a record exists exactly when its transaction does); one whose
request id a transaction of another batch, or an earlier item of this one, holds is answered
with that transaction and stored no second time, or refused on its request_id when its payload
differs (a migrated item's payload is its history too: RequestOf). A record that names the item's
own transaction is an earlier attempt's at this batch.
"""

from dataclasses import dataclass, field

from sanad.errors import Violation
from sanad.v1 import events_pb2
from workers.batch.domain import Context, Document, Fingerprints, RequestOf, Verdict, request_of
from workers.batch.store import BatchStore

REUSED = "was already used for another transaction"


@dataclass
class BatchRequests:
    """What one batch's request ids are held by, as its chunks are judged."""

    store: BatchStore
    batch: events_pb2.BatchSubmission
    context: Context
    # Request key -> the transaction id and payload fingerprints that hold it.
    held: dict[str, tuple[str, Fingerprints]] = field(default_factory=dict)

    async def settle(self, judged: Verdict) -> list[Document]:
        """Move judged's accepted items whose request id another transaction holds to that
        transaction (or to refused); returns the records the chunk's transaction inserts."""
        wanted: dict[int, RequestOf] = {}
        for index, _ in judged.accepted:
            if (request := request_of(self.batch, self.context, index)) is not None:
                wanted[index] = request
        refused: dict[int, RequestOf] = {}
        for index, _ in judged.rejected:
            if (request := request_of(self.batch, self.context, index)) is not None:
                refused[index] = request
        asked = [*wanted.values(), *refused.values()]
        unknown = {request.key for request in asked if request.key not in self.held}
        records = await self.store.request_records(sorted(unknown))
        # Records without a history fingerprint: is their transaction migrated (RequestOf.matches)?
        plain = [r["transaction_id"] for r in records if "history_fingerprint" not in r]
        migrated = await self.store.migrated_ids(plain) if plain else set()
        for record in records:
            tx = record["transaction_id"]
            self.held[record["_id"]] = (tx, Fingerprints.of(record, tx in migrated))
        self._answer_stored(judged, refused)
        kept: list[tuple[int, Document]] = []
        claims: list[Document] = []
        for index, doc in judged.accepted:
            if index not in wanted:
                kept.append((index, doc))
                continue
            request = wanted[index]
            holder = self.held.get(request.key)
            if holder is None:
                claim = _record(request, doc)
                self.held[request.key] = (
                    doc["_id"],
                    Fingerprints.of(claim, bool(doc.get("migrated"))),
                )
                claims.append(claim)
                kept.append((index, doc))
            elif not wanted[index].matches(holder[1]):
                judged.rejected.append((index, [Violation("request_id", REUSED)]))
            elif holder[0] == doc["_id"]:
                kept.append((index, doc))  # an earlier attempt's: stored with its record
            else:
                judged.stored_before.append((index, holder[0]))
        judged.accepted = kept
        judged.rejected.sort(key=lambda refusal: refusal[0])
        return claims

    def _answer_stored(self, judged: Verdict, refused: dict[int, RequestOf]) -> None:
        """Answer each refused item whose request id a transaction holds for this very payload
        with that transaction, as intake answers a retry: it was stored before the registry
        changed (a licence suspended, a fee raised) or a rule on its fields tightened."""
        still = []
        for index, violations in judged.rejected:
            request = refused.get(index)
            holder = self.held.get(request.key) if request is not None else None
            if request is not None and holder is not None and request.matches(holder[1]):
                judged.stored_before.append((index, holder[0]))
            else:
                still.append((index, violations))
        judged.rejected = still


def _record(request: RequestOf, doc: Document) -> Document:
    """A request id's record, in the shape intake keeps (services.intake.request_store)."""
    return {
        "_id": request.key,
        "transaction_id": doc["_id"],
        **request.record_fields(),
        "submit_time": doc["submit_time"],
    }
