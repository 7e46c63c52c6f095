"""Rollup increments computed from stored transaction documents, per sanad/rollups.py.

Increments are computed only for events a MongoDB transaction applies for the
first time (a newly inserted document, a newly applied change), inside that
same transaction, so a redelivered message can never count twice.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from sanad import rollups as contract
from sanad.domain.clock import utcnow
from sanad.domain.transactions import Status
from sanad.telemetry.metrics import (
    RECORDED_LAG_SECONDS,
    count_finished,
    count_rating,
    count_submitted,
    prepare_outcomes,
)

Document = dict[str, Any]

# A stored transaction's fields that name its business series' labels (place and agency).
BUSINESS_FIELDS = ("governorate_code", "wilayat_code", "agency_code")


def prepare_outcome_series(doc: Document) -> None:
    """Create a stored transaction's outcome series at zero, ahead of its outcome and rating
    (telemetry.metrics.prepare_outcomes)."""
    labels = [doc.get(key) for key in BUSINESS_FIELDS]
    if all(isinstance(label, str) and label for label in labels):
        prepare_outcomes(*labels)


_FINISH_COUNTER = {
    Status.COMPLETED.value: contract.COMPLETED,
    Status.REJECTED.value: contract.REJECTED,
    Status.CANCELLED.value: contract.CANCELLED,
}


class RollupIncrements:
    """Accumulates ($setOnInsert dimensions, $inc counters) per rollup document."""

    def __init__(self) -> None:
        # Per collection (daily, monthly, yearly): rollup id -> (dimensions, increments).
        self.grains: dict[str, dict[str, tuple[Document, defaultdict[str, int]]]] = {
            contract.COLLECTION: {},
            contract.MONTHLY: {},
            contract.YEARLY: {},
        }
        # Business metrics of live events, emitted by observe() once the write committed: newly
        # stored submissions, outcomes and ratings. Migrated history counts in the rollups only.
        self.recorded: list[Document] = []
        self.outcomes: list[tuple[Document, bool]] = []
        self.ratings: list[Document] = []

    def add(self, doc: Document, day: str, counters: dict[str, int]) -> None:
        """The counters on that day's rollup and on its month's and year's."""
        key = contract.rollup_id(day, doc["center_id"], doc["service_code"], doc["wilayat_code"])
        self._bump(contract.COLLECTION, key, counters, partial(contract.dimensions_of, doc, day))
        for collection, period in contract.periods_of(day).items():
            key = contract.period_id(period, doc["center_id"], doc["wilayat_code"])
            self._bump(
                collection, key, counters, partial(contract.period_dimensions_of, doc, period)
            )

    def _bump(
        self,
        collection: str,
        key: str,
        counters: dict[str, int],
        dimensions: Callable[[], Document],
    ) -> None:
        """Add counters to one rollup; its dimensions are built the first time it is touched."""
        found = self.grains[collection].get(key)
        if found is None:
            found = self.grains[collection][key] = (dimensions(), defaultdict(int))
        for name, amount in counters.items():
            found[1][name] += amount

    def submitted(self, doc: Document) -> None:
        """Submission counters, on the submission day."""
        counters = {contract.SUBMITTED: 1, contract.RECORDED: 1}
        counters[contract.FEES_BAISA] = doc["fee_baisa"]
        self.add(doc, _day(doc["submit_time"]), counters)

    def finished(self, doc: Document, live: bool = True) -> None:
        """Outcome counters, on the finish day; completion figures for completed ones only."""
        status = doc["status"]
        counters = {_FINISH_COUNTER[status]: 1}
        within_sla = False
        if status == Status.COMPLETED.value:
            elapsed = int(doc["sla_elapsed_seconds"])
            target = int(doc.get("sla_hours") or 0) * contract.HOUR
            counters[contract.COMPLETION_SECONDS_SUM] = elapsed
            counters[f"{contract.HISTOGRAM}.{contract.bucket_of(elapsed)}"] = 1
            # A service without an SLA target cannot miss it.
            within_sla = target <= 0 or elapsed <= target
            counters[contract.COMPLETED_WITHIN_SLA] = int(within_sla)
        else:
            counters[contract.REFUNDS_DUE_BAISA] = doc["fee_baisa"]
        if live:
            self.outcomes.append((doc, within_sla))
        self.add(doc, _day(doc["finish_time"]), counters)

    def rated(self, doc: Document, live: bool = True) -> None:
        """Rating counters, on the day the rating was given."""
        counters = {contract.RATINGS: 1, contract.RATING_SUM: int(doc["rating"])}
        self.add(doc, _day(doc["rating_time"]), counters)
        if live:
            self.ratings.append(doc)

    def stored(self, doc: Document) -> None:
        """Everything a newly stored document counts for (a migrated one may be finished)."""
        live = not doc.get("migrated")
        self.submitted(doc)
        if live:
            self.recorded.append(doc)
        if doc.get("status") in _FINISH_COUNTER:
            self.finished(doc, live)
        if doc.get("rating"):
            self.rated(doc, live)

    def observe(self, accepted_here: bool = False) -> None:
        """Count the committed live events in Prometheus: each exactly once, as only what a
        committed write stored or applied for the first time is here.

        accepted_here: the writer accepted these submissions itself (the batch worker), so
        they count as submitted too; intake counts its own when the broker confirms them.
        """
        now = utcnow()
        for doc in self.recorded:
            if not accepted_here:  # the ingest worker, which counts their outcomes later
                prepare_outcome_series(doc)
            RECORDED_LAG_SECONDS.observe((now - doc["submit_time"]).total_seconds())
            if accepted_here:
                count_submitted(
                    doc["governorate_code"],
                    doc["wilayat_code"],
                    doc["agency_code"],
                    doc["fee_baisa"],
                )
        for doc, within_sla in self.outcomes:
            count_finished(
                doc["governorate_code"],
                doc["wilayat_code"],
                doc["agency_code"],
                doc["status"].lower(),
                within_sla=within_sla,
                lag_seconds=(doc["finish_time"] - doc["submit_time"]).total_seconds(),
            )
        for doc in self.ratings:
            count_rating(doc["governorate_code"], int(doc["rating"]))

    def items(self) -> list[tuple[str, Document, dict[str, int]]]:
        """(rollup id, dimensions, increments) for each touched daily rollup."""
        return self._items(contract.COLLECTION)

    def period_items(self) -> dict[str, list[tuple[str, Document, dict[str, int]]]]:
        """The same for the monthly and yearly rollups, by collection."""
        return {c: self._items(c) for c in (contract.MONTHLY, contract.YEARLY)}

    def _items(self, collection: str) -> list[tuple[str, Document, dict[str, int]]]:
        return [(k, dims, dict(inc)) for k, (dims, inc) in self.grains[collection].items()]


def _day(moment: Any) -> str:
    return contract.day_of(moment)


def submitted_increments(documents: Iterable[Document]) -> dict[str, tuple[Document, Document]]:
    """For each rollup touched by newly stored documents: (dimensions, counters)."""
    increments = RollupIncrements()
    for doc in documents:
        increments.stored(doc)
    return {key: (dims, inc) for key, dims, inc in increments.items()}
