"""Batch rules: each item judged against the registry snapshot, turned into a stored document.

No I/O here. Transaction ids are derived from the batch id and item index, so a
batch handled again after a crash writes the same documents (those stored are skipped), never
new ones.
"""

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sanad.domain.clock import EPOCH, FIRST_DAY, FIRST_YEAR, LAST_YEAR, to_millisecond
from sanad.domain.ids import id_of
from sanad.domain.submissions import (
    CenterView,
    Channel,
    ServiceView,
    Submission,
    field_violations,
    request_key,
    validate,
)
from sanad.domain.transactions import FINISHED, Status, can_change
from sanad.errors import Invalid, NotFound, PreconditionFailed, Violation
from sanad.records import Document, document_from_submitted, finish, item_count, submitted_event
from sanad.registry_past import Dated, in_force
from sanad.rpc.enums import enum_suffix
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from workers.batch.content import historic_fee, history_bounds, overlong_codes

MIGRATION_ACTOR = "migration"
View = TypeVar("View", CenterView, ServiceView)


@dataclass
class Verdict:
    """Documents to store, items stored by an earlier attempt, and refusals, by item index."""

    accepted: list[tuple[int, Document]] = field(default_factory=list)
    rejected: list[tuple[int, list[Violation]]] = field(default_factory=list)
    # Accepted as well: transaction ids an earlier attempt at the same batch stored.
    stored_before: list[tuple[int, str]] = field(default_factory=list)

    def extend(self, other: "Verdict") -> None:
        """Add the verdict of the items that follow this one's."""
        self.accepted.extend(other.accepted)
        self.rejected.extend(other.rejected)
        self.stored_before.extend(other.stored_before)

    @property
    def documents(self) -> list[Document]:
        """The accepted items' documents, in index order."""
        return [doc for _, doc in self.accepted]

    @property
    def transaction_ids(self) -> list[tuple[int, str]]:
        """Every accepted item's transaction id, in index order."""
        ids = [(index, doc["_id"]) for index, doc in self.accepted] + self.stored_before
        return sorted(ids, key=lambda pair: pair[0])

    def judged_again(self, again: "Verdict") -> None:
        """Take again's verdict for the refused items it judged again."""
        again_indexes = {index for index, _ in again.accepted} | {i for i, _ in again.rejected}
        self.rejected = [pair for pair in self.rejected if pair[0] not in again_indexes]
        self.rejected = sorted(self.rejected + again.rejected, key=lambda pair: pair[0])
        self.accepted = sorted(self.accepted + again.accepted, key=lambda pair: pair[0])

    def accept_stored(self, stored: Mapping[int, str]) -> None:
        """Answer these refused items (index -> transaction id) as accepted: already stored."""
        self.rejected = [(index, found) for index, found in self.rejected if index not in stored]
        self.stored_before.extend(stored.items())


@dataclass(frozen=True)
class Context:
    """What every item of one batch is judged with."""

    batch_key: str
    center_id: str
    submitted_by: str
    started_at: datetime
    centers: Mapping[str, CenterView]
    services: Mapping[str, ServiceView]
    secret: bytes
    # Whether the batch's (broker-validated) submitter may submit for a centre: an item may
    # name a centre of its own, and the batch's centre alone was checked when it arrived.
    may_submit_for: Callable[[str], bool]
    # Where each centre was and what each service's terms were, since the registry first
    # recorded them: migrated history is filed and judged as of its submit time.
    places: Mapping[str, Sequence[Dated[CenterView]]] = field(default_factory=dict)
    terms: Mapping[str, Sequence[Dated[ServiceView]]] = field(default_factory=dict)


def derived_id(batch_key: str, index: int, at: datetime) -> str:
    """A time-sortable id in new_id's layout, the same every time for this batch and index."""
    digest = hashlib.sha256(f"{batch_key}\x1f{index}".encode()).digest()
    return id_of(int(at.timestamp() * 1000), int.from_bytes(digest[:10], "big"))


def submission_of(item: intake_pb2.SubmitTransactionRequest, center_id: str) -> Submission:
    """The intake domain's view of one item; items default to the batch's centre and channel."""
    name = enum_suffix(common_pb2.Channel, item.channel or common_pb2.CHANNEL_BATCH, "CHANNEL_")
    return Submission(
        request_id=item.request_id,
        center_id=item.center_id or center_id,
        service_code=item.service_code,
        channel=Channel(name) if name else None,
        fee_baisa=item.fee_baisa,
        civil_number=item.beneficiary_civil_number,
    )


def judge(
    submission: Submission,
    context: Context,
    now: datetime,
    historic: bool,
    as_of: datetime | None = None,
) -> tuple[CenterView, ServiceView] | list[Violation]:
    """The centre and service of a valid item, or its violations by field.

    A migrated (historic) item needs a known centre and service and correct fields, but not
    today's licence, offer or fee: it happened when they were valid, at the fee of its day
    (checked only to be positive and bounded, see historic_fee). With as_of (its submit time),
    they are the centre and service as the registry had them then: where the centre was, the
    service's terms and fee.
    """
    center = context.centers.get(submission.center_id)
    service = context.services.get(submission.service_code)
    if historic and as_of is not None:
        if center is not None:
            center = in_force(context.places.get(center.id, ()), as_of) or center
        if service is not None:
            service = in_force(context.terms.get(service.code, ()), as_of) or service
    if historic:
        found = field_violations(submission, None) + historic_fee(submission, service)
        found += _existence(submission, center, service)
        if found or center is None or service is None:
            return found
        return center, service
    try:
        return validate(submission, center, service, now)
    except Invalid as error:
        return list(error.violations)
    except (NotFound, PreconditionFailed) as error:
        field_name = "center_id" if center is None or not center.is_serving(now) else "service_code"
        return [Violation(field_name, error.message)]


def _existence(
    submission: Submission, center: CenterView | None, service: ServiceView | None
) -> list[Violation]:
    found = []
    if submission.center_id and center is None:
        found.append(Violation("center_id", f"centre {submission.center_id!r} not found"))
    if submission.service_code and service is None:
        found.append(Violation("service_code", f"service {submission.service_code!r} not found"))
    return found


# The fields a refusal names when it may rest on the registry's state alone (a centre unknown
# or not serving, a service unknown, retired or not offered, a fee not the catalogue's).
REGISTRY_FIELDS = frozenset({"center_id", "service_code", "fee_baisa"})


def registry_keys(
    batch: events_pb2.BatchSubmission,
    context: Context,
    index: int,
    violations: Sequence[Violation],
) -> tuple[str, str] | None:
    """The centre and service a refused item names, when its refusal may rest on the registry's
    state alone (the item well formed and its submitter's to send): what to ask the registry."""
    if any(violation.field not in REGISTRY_FIELDS for violation in violations):
        return None
    live = len(batch.items)
    item = batch.items[index] if index < live else batch.history_items[index - live].transaction
    submission = submission_of(item, context.center_id)
    malformed = field_violations(submission, None) or overlong_codes(submission)
    if malformed or _out_of_scope(submission, context):
        return None
    return submission.center_id, submission.service_code


def with_views(
    context: Context,
    centers: Mapping[str, CenterView | None],
    services: Mapping[str, ServiceView | None],
) -> Context | None:
    """The context with these centres and services as the registry has them now (None: it
    does not know one); None when they are the context's already."""
    if all(context.centers.get(key) == view for key, view in centers.items()) and all(
        context.services.get(key) == view for key, view in services.items()
    ):
        return None
    return replace(
        context,
        centers=_updated(context.centers, centers),
        services=_updated(context.services, services),
    )


def _updated(views: Mapping[str, View], now: Mapping[str, View | None]) -> dict[str, View]:
    updated = {**views, **{key: view for key, view in now.items() if view is not None}}
    for key in (key for key, view in now.items() if view is None):
        updated.pop(key, None)
    return updated


def document(
    submission: Submission,
    center: CenterView,
    service: ServiceView,
    *,
    context: Context,
    transaction_id: str,
    submit_time: datetime,
) -> Document:
    """The stored document of an accepted item, RECORDED as of submit_time."""
    event = submitted_event(
        submission,
        center,
        service,
        transaction_id=transaction_id,
        submitted_by=context.submitted_by,
        submit_time=submit_time,
        civil_secret=context.secret,
    )
    return document_from_submitted(event, submit_time)


def apply_history(
    doc: Document, item: events_pb2.HistoricalTransaction, now: datetime
) -> Document | list[Violation]:
    """A migrated document carried through its recorded history, or why that history is wrong.

    Marked `migrated`: it counts in the rollups on its own days, but not in the live metrics.
    """
    doc["migrated"] = True
    doc["history"][-1]["actor"] = MIGRATION_ACTOR
    for position, step in enumerate(item.history):
        where = f"history[{position}]"
        try:
            name = common_pb2.TransactionStatus.Name(step.status).removeprefix(
                "TRANSACTION_STATUS_"
            )
            status = Status(name)
        except ValueError:
            return [Violation(f"{where}.status", "is not a known status")]
        at = required_moment(step, "time", f"{where}.time", now)
        if isinstance(at, Violation):
            return [at]
        if not can_change(Status(doc["status"]), status):
            return [Violation(f"{where}.status", f"cannot follow {doc['status']}")]
        if at < doc["history"][-1]["time"]:
            return [Violation(f"{where}.time", "is earlier than the step before")]
        entry = {"status": status.value, "time": at, "actor": step.actor or MIGRATION_ACTOR}
        if step.note:
            entry["note"] = step.note
        doc["history"].append(entry)
        doc["status"] = status.value
        if status in FINISHED:
            finish(doc, status, at)
    if item.rating:
        if doc["status"] != Status.COMPLETED.value or not 1 <= item.rating <= 5:
            return [Violation("rating", "must be 1 to 5 and only for a completed transaction")]
        doc["rating"] = item.rating
        doc["rating_time"] = doc["finish_time"]
    return doc


@dataclass(frozen=True)
class RequestOf:
    """An item's request id as its record keeps it: the record's key and the payload's
    fingerprint, as intake keeps them (sanad.domain.submissions). A migrated item's payload is its
    history too (submit time, steps, rating): `fingerprint` covers it, `earlier` is the
    transaction's fields alone (a live item's two are one).

    The record's own `fingerprint` field holds `earlier`, what every version of the workers
    and intake compares, and a migrated item's record adds `history_fingerprint`: a batch worker
    of an earlier version, running beside this one in a rolling upgrade, then answers the same
    content with the same transaction instead of refusing it as another payload. Records
    written by the version that kept the whole fingerprint in `fingerprint` match as well."""

    key: str
    fingerprint: str
    earlier: str

    def record_fields(self) -> dict[str, str]:
        """The fingerprint fields of this request's record."""
        if self.fingerprint == self.earlier:
            return {"fingerprint": self.earlier}
        return {"fingerprint": self.earlier, "history_fingerprint": self.fingerprint}

    def matches(self, recorded: "Fingerprints") -> bool:
        """Is the recorded payload this item's?

        A record without a history fingerprint is a live item's, or a migrated item's from
        before session 25/26: a migrated item matches it on the transaction's fields alone only
        when its transaction is itself migrated; a live transaction holds no history, so a
        migration under its request id is another payload (README: refused on request_id)."""
        if recorded.history is not None:
            return (recorded.fingerprint, recorded.history) == (self.earlier, self.fingerprint)
        if recorded.fingerprint == self.fingerprint:
            return True
        return recorded.fingerprint == self.earlier and (
            self.fingerprint == self.earlier or recorded.migrated
        )


@dataclass(frozen=True)
class Fingerprints:
    """A request id record's fingerprint fields (RequestOf.record_fields)."""

    fingerprint: str
    history: str | None = None
    # Whether the transaction holding the request id is a migrated one (see RequestOf.matches).
    migrated: bool = True

    @classmethod
    def of(cls, record: Document, migrated: bool = True) -> "Fingerprints":
        return cls(record["fingerprint"], record.get("history_fingerprint"), migrated)


def request_of(batch: events_pb2.BatchSubmission, context: Context, index: int) -> RequestOf | None:
    """The item's request id as its record keeps it; None for an item without a request id.
    The caller is the batch's submitter, its RabbitMQ user, apart from every gRPC caller."""
    live = len(batch.items)
    item = batch.items[index] if index < live else batch.history_items[index - live].transaction
    if not item.request_id:
        return None
    key = request_key(f"amqp:{context.submitted_by}", item.request_id)
    fingerprint = submission_of(item, context.center_id).fingerprint(context.secret)
    if index < live:
        return RequestOf(key, fingerprint, fingerprint)
    history = events_pb2.HistoricalTransaction()
    history.CopyFrom(batch.history_items[index - live])
    history.ClearField("transaction")
    told = fingerprint.encode() + b"\x1f" + history.SerializeToString(deterministic=True)
    return RequestOf(key, hmac.new(context.secret, told, hashlib.sha256).hexdigest(), fingerprint)


def item_id(batch: events_pb2.BatchSubmission, context: Context, index: int) -> str | None:
    """The transaction id the item at index is stored under when accepted; None for a history
    item without a valid submit time (never accepted)."""
    live = len(batch.items)
    if index < live:
        return derived_id(context.batch_key, index, context.started_at)
    item = batch.history_items[index - live]
    submitted = required_moment(item, "submit_time", "submit_time", context.started_at)
    if isinstance(submitted, Violation):
        return None
    return derived_id(context.batch_key, index, submitted)


def judge_batch(batch: events_pb2.BatchSubmission, context: Context, now: datetime) -> Verdict:
    """Every item of a batch judged; live items first, then history items, by index."""
    return judge_items(batch, context, now, range(item_count(batch)))


def judge_items(
    batch: events_pb2.BatchSubmission, context: Context, now: datetime, indexes: Iterable[int]
) -> Verdict:
    """The items of a batch at these indexes judged, in index order.

    Each item is judged on its own, so judging a batch in consecutive ranges gives the verdict
    of judging it whole.
    """
    verdict = Verdict()
    live = len(batch.items)
    for index in indexes:
        if index < live:
            judged = _judge_live(batch.items[index], index, context, now)
        else:
            judged = _judge_history(batch.history_items[index - live], index, context, now)
        if isinstance(judged, list):
            verdict.rejected.append((index, judged))
        else:
            verdict.accepted.append((index, judged))
    return verdict


def required_moment(
    owner: Message, name: str, field_name: str, now: datetime
) -> datetime | Violation:
    """The time in owner's Timestamp field `name` (moment), or "is required" when it is unset."""
    if not owner.HasField(name):
        return Violation(field_name, "is required")
    return moment(getattr(owner, name), field_name, now)


def moment(stamp: Timestamp, field_name: str, now: datetime) -> datetime | Violation:
    """A migrated item's time, or why it cannot be one: out of Timestamp's range, before the
    first year reported, or later than the batch's start."""
    try:
        at = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return Violation(field_name, "is not a valid time")
    if at < FIRST_DAY:
        # Named, since a sender that sets the field without a time sends the Unix epoch.
        shown = "the Unix epoch (a time left at zero?)" if at == EPOCH else _rfc3339(at)
        return Violation(
            field_name,
            f"is {shown}, before {FIRST_YEAR}: statistics cover {FIRST_YEAR} to {LAST_YEAR}",
        )
    if at > now:
        return Violation(field_name, "is later than the batch's arrival")
    # At MongoDB's millisecond, as stored: the SLA clock and its rollups were worked out from the
    # microseconds, and a completion within a millisecond of the SLA was stored late while the
    # transaction, read back, showed it in time.
    return to_millisecond(at)


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _out_of_scope(submission: Submission, context: Context) -> list[Violation]:
    """An item for another centre than the batch's, which its submitter may not submit for."""
    center_id = submission.center_id
    if center_id == context.center_id or context.may_submit_for(center_id):
        return []
    return [Violation("center_id", f"this submitter may not submit for centre {center_id!r}")]


def _judge_live(
    item: intake_pb2.SubmitTransactionRequest, index: int, context: Context, now: datetime
) -> Document | list[Violation]:
    submission = submission_of(item, context.center_id)
    if refused := overlong_codes(submission) or _out_of_scope(submission, context):
        return refused
    found = judge(submission, context, now, historic=False)
    if isinstance(found, list):
        return found
    return document(
        submission,
        *found,
        context=context,
        transaction_id=derived_id(context.batch_key, index, context.started_at),
        submit_time=context.started_at,
    )


def _judge_history(
    item: events_pb2.HistoricalTransaction, index: int, context: Context, now: datetime
) -> Document | list[Violation]:
    submission = submission_of(item.transaction, context.center_id)
    refused = (
        overlong_codes(submission) or history_bounds(item) or _out_of_scope(submission, context)
    )
    if refused:
        return refused
    submitted = required_moment(item, "submit_time", "submit_time", now)
    # Judged, filed and kept as of its submit time: the centre's place, the service's terms.
    as_of = None if isinstance(submitted, Violation) else submitted
    found = judge(submission, context, now, historic=True, as_of=as_of)
    if isinstance(submitted, Violation):
        return [*found, submitted] if isinstance(found, list) else [submitted]
    if isinstance(found, list):
        return found
    tx_id = derived_id(context.batch_key, index, submitted)
    return apply_history(
        document(submission, *found, context=context, transaction_id=tx_id, submit_time=submitted),
        item,
        now,
    )
