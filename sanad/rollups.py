"""The rollup contract: counters per day x centre x service, written by workers, read by metrics.

One document per (day, centre, service, wilayat) in collection `rollups`, _id
"YYYY-MM-DD|centre|service|wilayat": a transaction counts where its centre was when it was
submitted, and a centre that moves starts documents of its own in its new wilayat, so no document
mixes two places (every read sums documents by their dimension fields, never by _id).
A counter is incremented on the day its event happened: `submitted`, `recorded` and `fees_baisa` on
the submission day; `completed`, `rejected`, `cancelled` and the completion figures on the day the
transaction finished; ratings on the day the rating was given. Completion times are running
SLA-clock seconds (paused intervals excluded). Workers increment only inside the MongoDB
transaction that applies the event for the first time, so a redelivery never counts twice.
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

COLLECTION = "rollups"

# The same counters per month x centre and per year x centre, the service dimension dropped, in
# collections of their own: _id "YYYY-MM|centre|wilayat" / "YYYY|centre|wilayat" (earlier
# versions wrote "YYYY-MM|centre", which reads sum alike), field `period` "YYYY-MM" /
# "YYYY". At Sanad volumes a day x centre x service document holds about one transaction, so a
# governorate's year reads one yearly document per centre instead of ~one per transaction.
# Workers increment all three in the same MongoDB transaction, under the same first-time rule.
MONTHLY = "rollups_monthly"
YEARLY = "rollups_yearly"
PERIOD_DIMENSIONS = ("period", "center_id", "governorate_code", "wilayat_code")

# What metrics' aggregations match on: every grain by centre, wilayat or governorate, then time.
# The ingest worker builds them at its start, so every collection exists before a transaction
# writes there; metrics only checks they exist (NOT_SERVING until they do).
INDEXES = tuple(
    (collection, [(dimension, 1), (field, 1)])
    for collection, field in ((COLLECTION, "day"), (MONTHLY, "period"), (YEARLY, "period"))
    for dimension in ("center_id", "wilayat_code", "governorate_code")
)

# Dimensions stored on every rollup document (set on insert).
DIMENSIONS = (
    "day",
    "center_id",
    "service_code",
    "governorate_code",
    "wilayat_code",
    "agency_code",
)

# Counters (integers, absent = 0).
SUBMITTED = "submitted"
RECORDED = "recorded"
COMPLETED = "completed"
REJECTED = "rejected"
CANCELLED = "cancelled"
FEES_BAISA = "fees_baisa"
REFUNDS_DUE_BAISA = "refunds_due_baisa"
COMPLETED_WITHIN_SLA = "completed_within_sla"
COMPLETION_SECONDS_SUM = "completion_seconds_sum"
RATINGS = "ratings"
RATING_SUM = "rating_sum"
COUNTERS = (
    SUBMITTED,
    RECORDED,
    COMPLETED,
    REJECTED,
    CANCELLED,
    FEES_BAISA,
    REFUNDS_DUE_BAISA,
    COMPLETED_WITHIN_SLA,
    COMPLETION_SECONDS_SUM,
    RATINGS,
    RATING_SUM,
)

# Completion-time histogram: field "completion_hist.le_<seconds>" counts completions whose running
# clock was <= that bound and > the previous one; "completion_hist.le_inf" the rest.
HOUR = 3600
COMPLETION_BOUNDS_S = (
    HOUR // 4,
    HOUR // 2,
    HOUR,
    2 * HOUR,
    4 * HOUR,
    8 * HOUR,
    24 * HOUR,
    48 * HOUR,
    72 * HOUR,
    7 * 24 * HOUR,
    14 * 24 * HOUR,
    30 * 24 * HOUR,
)
HISTOGRAM = "completion_hist"


def day_of(moment: date) -> str:
    """The rollup day ("YYYY-MM-DD") of a date or datetime, the year zero-padded to four digits
    (strftime("%Y") writes year 500 as "500", which no range of days would find)."""
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def rollup_id(day: str, center_id: str, service_code: str, wilayat_code: str) -> str:
    """The _id of one daily rollup document (earlier versions left the wilayat out)."""
    return f"{day}|{center_id}|{service_code}|{wilayat_code}"


def bucket_of(seconds: int) -> str:
    """The histogram field (under HISTOGRAM) a completion time falls in."""
    for bound in COMPLETION_BOUNDS_S:
        if seconds <= bound:
            return f"le_{bound}"
    return "le_inf"


def dimensions_of(transaction: Mapping[str, Any], day: str) -> dict[str, Any]:
    """The dimension fields of a rollup for a stored transaction document."""
    return {"day": day, **{name: transaction[name] for name in DIMENSIONS[1:]}}


def period_id(period: str, center_id: str, wilayat_code: str) -> str:
    """The _id of one monthly ("YYYY-MM") or yearly ("YYYY") rollup document."""
    return f"{period}|{center_id}|{wilayat_code}"


def periods_of(day: str) -> dict[str, str]:
    """The month and the year a day ("YYYY-MM-DD") counts in, by collection."""
    return {MONTHLY: day[:7], YEARLY: day[:4]}


def period_dimensions_of(transaction: Mapping[str, Any], period: str) -> dict[str, Any]:
    """The dimension fields of a monthly or yearly rollup for a stored transaction document."""
    return {"period": period, **{name: transaction[name] for name in PERIOD_DIMENSIONS[1:]}}
