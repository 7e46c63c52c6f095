"""The ingest handler stores good messages and names the poison ones, with a fake store."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from sanad.amqp.packing import MAX_PACK_ITEMS, pack
from sanad.amqp.verdicts import Dead, DeadParts
from sanad.rpc.timestamps import to_timestamp
from sanad.security.audit import AuditEvent, to_proto
from sanad.v1 import audit_pb2, common_pb2, events_pb2
from workers.ingest.changes import Applied
from workers.ingest.handlers import (
    RATED_TYPE,
    STATUS_CHANGED_TYPE,
    SUBMITTED_PACK_TYPE,
    SUBMITTED_TYPE,
    IngestHandler,
)
from workers.storage.rollups import submitted_increments


@dataclass
class FakeMessage:
    body: bytes
    type: str | None = SUBMITTED_TYPE


@dataclass
class FakeStore:
    stored: list[dict[str, object]] = field(default_factory=list)
    audits: dict[str, dict[str, object]] = field(default_factory=dict)

    async def record(
        self,
        documents: Sequence[dict[str, object]],
        changes: Sequence[object],
        audits: Mapping[str, dict[str, object]] | None = None,
    ) -> list[Applied]:
        self.stored.extend(documents)
        self.audits.update(audits or {})
        return [Applied.APPLIED for _ in changes]


def submitted(transaction_id: str = "T1", event: audit_pb2.AuditEvent | None = None) -> bytes:
    return events_pb2.TransactionSubmitted(
        audit=event,
        transaction_id=transaction_id,
        center_id="C1",
        governorate_code="DA",
        wilayat_code="DA-NIZ",
        service_code="ROP-VISA",
        agency_code="ROP",
        channel=common_pb2.CHANNEL_COUNTER,
        fee_baisa=5000,
        beneficiary_hash="ab" * 32,
        beneficiary_masked="*****678",
        submit_time=to_timestamp(datetime(2024, 5, 1, 9, tzinfo=UTC)),
    ).SerializeToString()


async def test_good_messages_are_stored_and_poison_is_named() -> None:
    store = FakeStore()
    batch = [
        FakeMessage(submitted("T1")),
        FakeMessage(b"\xff\x00garbage"),
        FakeMessage(submitted("T2"), type="sanad.v1.Unknown"),
        FakeMessage(events_pb2.TransactionSubmitted(center_id="C1").SerializeToString()),
        FakeMessage(submitted("T3")),
    ]
    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]
    assert [d["_id"] for d in store.stored] == ["T1", "T3"]
    assert outcomes[0] is None
    assert outcomes[4] is None
    reasons = [o.reason for o in outcomes[1:4] if isinstance(o, Dead)]
    assert reasons == ["undecodable", "unknown-type", "invalid"]


async def test_a_pack_stores_its_items_and_names_each_poison_item_alone() -> None:
    store = FakeStore()
    invalid = events_pb2.TransactionSubmitted(center_id="C1").SerializeToString()
    event = accepted_event("P2")
    items = [submitted("P1"), invalid, submitted("P2", to_proto(event)), submitted("P1")]
    batch = [
        FakeMessage(submitted("T1")),
        FakeMessage(pack(items), type=SUBMITTED_PACK_TYPE),
        FakeMessage(pack([submitted("P3")]), type=SUBMITTED_PACK_TYPE),
    ]
    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]
    # Every good item is handed to the store, which keeps the first of a repeated id.
    assert [d["_id"] for d in store.stored] == ["T1", "P1", "P2", "P1", "P3"]
    assert list(store.audits) == ["P2"]
    assert outcomes[0] is None
    assert outcomes[2] is None
    poison = outcomes[1]
    assert isinstance(poison, DeadParts)
    assert poison.message_type == SUBMITTED_TYPE
    assert [(p.body, p.dead.reason, p.message_id) for p in poison.parts] == [
        (invalid, "invalid", "")
    ]


async def test_an_undecodable_or_empty_pack_is_dead_as_a_whole() -> None:
    store = FakeStore()
    batch = [
        FakeMessage(b"\x0a\xff\xff", type=SUBMITTED_PACK_TYPE),
        FakeMessage(b"", type=SUBMITTED_PACK_TYPE),
    ]
    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]
    assert [o.reason for o in outcomes if isinstance(o, Dead)] == ["undecodable", "invalid"]
    assert store.stored == []


def accepted_event(transaction_id: str) -> AuditEvent:
    return AuditEvent(
        time=datetime(2024, 5, 1, 9, 0, 0, 123000, tzinfo=UTC),
        subject="centre-c1",
        role="centre",
        agency_code="",
        center_id="C1",
        rpc="/sanad.v1.IntakeService/SubmitTransaction",
        target={"center_id": "C1", "transaction_id": transaction_id},
        outcome="OK",
        request_id="req-1",
        recorded_by="intake",
    )


async def test_a_carried_audit_event_is_stored_with_its_transaction() -> None:
    store = FakeStore()
    event = accepted_event("T1")
    batch = [FakeMessage(submitted("T1", to_proto(event))), FakeMessage(submitted("T2"))]
    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]
    assert outcomes == [None, None]
    assert [d["_id"] for d in store.stored] == ["T1", "T2"]
    assert list(store.audits) == ["T1"]
    stored = store.audits["T1"]
    assert stored["_id"] == event.id
    assert stored["time"] == event.time
    assert stored["target"] == {"center_id": "C1", "transaction_id": "T1"}
    assert stored["target_values"] == ["C1", "T1"]
    assert (stored["subject"], stored["outcome"], stored["recorded_by"]) == (
        "centre-c1",
        "OK",
        "intake",
    )


async def test_a_carried_audit_event_without_its_id_dead_letters_the_message() -> None:
    store = FakeStore()
    broken = to_proto(accepted_event("T1"))
    broken.id = ""
    outcomes = await IngestHandler(store)([FakeMessage(submitted("T1", broken))])  # type: ignore[list-item]
    assert isinstance(outcomes[0], Dead)
    assert outcomes[0].reason == "invalid"
    assert store.stored == []


async def test_stored_documents_keep_no_clear_civil_number() -> None:
    store = FakeStore()
    await IngestHandler(store)([FakeMessage(submitted())])  # type: ignore[list-item]
    doc = store.stored[0]
    assert doc["status"] == "RECORDED"
    assert doc["beneficiary_masked"] == "*****678"
    assert "12345678" not in repr(doc)


def test_rollup_increments_group_by_day_centre_service_and_place() -> None:
    day = datetime(2024, 5, 1, 9, tzinfo=UTC)
    docs = [
        {
            "submit_time": day,
            "center_id": "C1",
            "service_code": "S",
            "governorate_code": "DA",
            "wilayat_code": "DA-NIZ",
            "agency_code": "ROP",
            "fee_baisa": 100,
        },
    ] * 3
    increments = submitted_increments(docs)
    assert list(increments) == ["2024-05-01|C1|S|DA-NIZ"]
    _, inc = increments["2024-05-01|C1|S|DA-NIZ"]
    assert inc == {"submitted": 3, "recorded": 3, "fees_baisa": 300}


async def test_times_out_of_range_are_named_invalid_instead_of_failing_the_handler() -> None:
    store = FakeStore()
    far = events_pb2.TransactionSubmitted.FromString(submitted("T9"))
    far.submit_time.seconds = 10**12
    bad_nanos = events_pb2.TransactionStatusChanged(
        transaction_id="T1", change_id="c1", status=common_pb2.TRANSACTION_STATUS_IN_PROGRESS
    )
    bad_nanos.time.nanos = 2_000_000_000
    rated = events_pb2.TransactionRated(transaction_id="T1", rating=5)
    rated.time.seconds = -(10**12)
    batch = [
        FakeMessage(far.SerializeToString()),
        FakeMessage(bad_nanos.SerializeToString(), type=STATUS_CHANGED_TYPE),
        FakeMessage(rated.SerializeToString(), type=RATED_TYPE),
        FakeMessage(submitted("T1")),
    ]

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert [d["_id"] for d in store.stored] == ["T1"]
    assert [o.reason if isinstance(o, Dead) else o for o in outcomes] == [
        "invalid",
        "invalid",
        "invalid",
        None,
    ]
    assert all("time out of range" in o.detail for o in outcomes[:3] if isinstance(o, Dead))


async def test_a_channel_this_version_does_not_know_is_named_in_its_dead_letter() -> None:
    # A newer intake may send a channel this worker does not know: the letter says so, not "a
    # time out of range" (upgrade helper), and the rest of the batch is stored.
    store = FakeStore()
    unknown = events_pb2.TransactionSubmitted.FromString(submitted("T9"))
    unknown.channel = 7  # type: ignore[assignment]
    batch = [FakeMessage(unknown.SerializeToString()), FakeMessage(submitted("T1"))]

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert [d["_id"] for d in store.stored] == ["T1"]
    assert outcomes[0] == Dead("invalid", "unknown channel 7")


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("fee_baisa", 2**63 - 1, "fee_baisa 9223372036854775807 is not from 0 to 10,000,000"),
        ("fee_baisa", -5, "fee_baisa -5 is not from 0 to 10,000,000"),
        ("request_id", "r" * 5_000_000, "longer than 128 characters: request_id"),
        ("center_id", "C" * 129, "longer than 128 characters: center_id"),
        ("submitted_by", "s" * 10_001, "submitted_by is longer than 10,000 characters"),
        ("beneficiary_masked", "*" * 129, "masked number is longer than 128"),
        ("sla_hours", -1, "must not be negative"),
    ],
)
async def test_a_submission_beyond_what_intake_sends_is_dead_lettered_not_stored(
    field: str, value: object, why: str
) -> None:
    # Stored, a fee near 2**63 overflowed the rollups' sums (the unit retried forever, holding
    # the queue) and the reports (INTERNAL); a request id of 5 MB made every listing page of its
    # centre larger than a gRPC message (fuzz helper).
    store = FakeStore()
    odd = events_pb2.TransactionSubmitted.FromString(submitted("T9"))
    setattr(odd, field, value)
    batch = [FakeMessage(odd.SerializeToString()), FakeMessage(submitted("T1"))]

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert [d["_id"] for d in store.stored] == ["T1"]
    assert isinstance(outcomes[0], Dead)
    assert outcomes[0].reason == "invalid"
    assert why in outcomes[0].detail


async def test_a_status_change_or_rating_beyond_what_intake_sends_is_dead_lettered() -> None:
    change = events_pb2.TransactionStatusChanged(
        transaction_id="T1",
        change_id="c1",
        status=common_pb2.TRANSACTION_STATUS_IN_PROGRESS,
        note="n" * 10_001,
        sequence=1,
    )
    change.time.GetCurrentTime()
    rating = events_pb2.TransactionRated(transaction_id="T" * 129, rating=3)
    rating.time.GetCurrentTime()
    store = FakeStore()
    outcomes = await IngestHandler(store)(  # type: ignore[arg-type]
        [
            FakeMessage(change.SerializeToString(), type=STATUS_CHANGED_TYPE),
            FakeMessage(rating.SerializeToString(), type=RATED_TYPE),
        ]
    )
    assert [(o.reason if isinstance(o, Dead) else o) for o in outcomes] == ["invalid", "invalid"]


async def test_a_pack_of_more_items_than_intake_packs_is_dead_as_a_whole_unread() -> None:
    # Parsed, three packs of 2,000,000 near-empty items (10 MB each) took the worker from 1.3
    # to 1.9 GB, over its 768 MiB limit in deploy/k8s, and it dead-lettered each item alone
    # (fuzz helper). Intake packs at most 10,000.
    store = FakeStore()
    over = b"\x0a\x00" * (MAX_PACK_ITEMS + 1)  # field 1 (items), empty
    batch = [FakeMessage(over, type=SUBMITTED_PACK_TYPE), FakeMessage(submitted("T1"))]

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert [d["_id"] for d in store.stored] == ["T1"]
    assert isinstance(outcomes[0], Dead)
    assert outcomes[0].reason == "too-large"
    assert f"over {MAX_PACK_ITEMS:,} items" in outcomes[0].detail


async def test_a_pack_of_as_many_items_as_intake_packs_is_read_item_by_item() -> None:
    store = FakeStore()
    full = pack([submitted("P1")] + [b""] * (MAX_PACK_ITEMS - 1))
    batch = [FakeMessage(full, type=SUBMITTED_PACK_TYPE)]

    outcomes = await IngestHandler(store)(batch)  # type: ignore[arg-type]

    assert [d["_id"] for d in store.stored] == ["P1"]
    assert isinstance(outcomes[0], DeadParts)
    assert len(outcomes[0].parts) == MAX_PACK_ITEMS - 1
