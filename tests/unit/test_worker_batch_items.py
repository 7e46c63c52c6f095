"""What one batch item may carry: bounded sizes, migrated fees, known channels; and the
fingerprint that tells a resent batch from another batch under the same id."""

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from sanad.domain.characters import CONTROL
from sanad.v1 import common_pb2, events_pb2, intake_pb2
from tests.unit.test_worker_batch_pipeline import NOW, SERVICE, context
from tests.unit.wire_format import varint
from workers.batch.answers import result_of
from workers.batch.content import (
    MAX_ACTOR_LENGTH,
    MAX_HISTORIC_FEE_BAISA,
    MAX_HISTORY_STEPS,
    MAX_NOTE_LENGTH,
    fingerprint,
)
from workers.batch.domain import judge_batch


def live(n: int = 0, **changes: object) -> intake_pb2.SubmitTransactionRequest:
    fields: dict[str, object] = {
        "request_id": f"r-{n}",
        "service_code": "ROP-VISA",
        "channel": common_pb2.CHANNEL_COUNTER,
        "fee_baisa": 5000,
        "beneficiary_civil_number": f"{10_000_000 + n}",
    }
    return intake_pb2.SubmitTransactionRequest(**{**fields, **changes})


def migrated(n: int = 0, steps: int = 2, **changes: object) -> events_pb2.HistoricalTransaction:
    """Submitted ten days ago, in progress and (with two steps or more) completed after."""
    item = events_pb2.HistoricalTransaction(transaction=live(n, **changes))
    item.submit_time.FromDatetime(NOW - timedelta(days=10))
    for position in range(steps):
        status = (
            common_pb2.TRANSACTION_STATUS_COMPLETED
            if position == steps - 1 and steps > 1
            else common_pb2.TRANSACTION_STATUS_IN_PROGRESS
            if position % 2 == 0
            else common_pb2.TRANSACTION_STATUS_AWAITING_DOCUMENTS
        )
        step = item.history.add(status=status, actor="ministry", note="ok")
        step.time.FromDatetime(NOW - timedelta(days=9, minutes=-position))
    return item


def verdict_of(batch: events_pb2.BatchSubmission) -> dict[int, list[tuple[str, str]]]:
    """Index -> the violations of each item; an accepted item has none."""
    judged = judge_batch(batch, context(), NOW)
    found: dict[int, list[tuple[str, str]]] = {i: [] for i, _ in judged.accepted}
    found.update({i: [(v.field, v.description) for v in vs] for i, vs in judged.rejected})
    return dict(sorted(found.items()))


def test_a_history_beyond_its_bounds_is_refused_by_field_and_the_items_beside_it_stored() -> None:
    longest = migrated(0, steps=MAX_HISTORY_STEPS)
    longest.history[0].actor = "a" * MAX_ACTOR_LENGTH
    longest.history[0].note = "ن" * MAX_NOTE_LENGTH
    too_many = migrated(1, steps=MAX_HISTORY_STEPS + 1)
    long_actor, long_note = migrated(2), migrated(3)
    long_actor.history[1].actor = "a" * (MAX_ACTOR_LENGTH + 1)
    # A note the size of a MongoDB document: stored, it would fail the batch's whole chunk.
    long_note.history[0].note = "x" * (16 * 1024 * 1024)
    batch = events_pb2.BatchSubmission(
        batch_id="b-1",
        center_id="C1",
        items=[live(9)],
        history_items=[longest, too_many, long_actor, long_note],
    )

    assert verdict_of(batch) == {
        0: [],
        1: [],
        2: [("history", f"must have at most {MAX_HISTORY_STEPS} steps")],
        3: [("history[1].actor", f"must be at most {MAX_ACTOR_LENGTH} characters")],
        4: [("history[0].note", f"must be at most {MAX_NOTE_LENGTH} characters")],
    }


def test_a_history_step_whose_note_or_actor_acts_on_a_display_is_refused_by_field() -> None:
    # As an intake status note: shown to every client as it is (review of session 26).
    escaped, reordered = migrated(0), migrated(1)
    escaped.history[0].note = "\x1b[31mred\x00"
    reordered.history[1].actor = "agency\u202egnp.exe"
    batch = events_pb2.BatchSubmission(
        batch_id="b-1", center_id="C1", items=[live(9)], history_items=[escaped, reordered]
    )

    assert verdict_of(batch) == {
        0: [],
        1: [("history[0].note", CONTROL)],
        2: [("history[1].actor", CONTROL)],
    }


def test_a_history_whose_every_step_is_at_fault_is_refused_for_its_first() -> None:
    faulty = migrated(0, steps=MAX_HISTORY_STEPS)
    for step in faulty.history[1:]:
        step.actor, step.note = "\x01", "a" * (MAX_NOTE_LENGTH + 1)
    batch = events_pb2.BatchSubmission(batch_id="b-1", center_id="C1", history_items=[faulty])

    # Each step's were named: up to 200 violations an item.
    assert verdict_of(batch) == {
        0: [
            ("history[1].note", f"must be at most {MAX_NOTE_LENGTH} characters"),
            ("history[1].actor", CONTROL),
        ]
    }


def test_the_answer_to_a_batch_at_its_limits_of_faulty_steps_fits_a_message_and_a_document() -> (
    None
):
    # 2.2 MB sent (without times), a 28.7 MB answer: MongoDB did not save it (DocumentTooLarge),
    # the broker would not carry it, and the batch was dead-lettered `handler-failed`, never
    # answered.
    item = migrated(0, steps=MAX_HISTORY_STEPS)
    for step in item.history:
        step.actor, step.note = "\x01", "\x01"
    batch = events_pb2.BatchSubmission(
        batch_id="b" * 200, center_id="C1", history_items=[item] * 5000
    )
    assert len(batch.SerializeToString()) < 5 * 1024 * 1024  # well within the body limit

    answer = result_of(batch.batch_id, judge_batch(batch, context(), NOW))

    assert len(answer.rejected) == 5000
    assert len(answer.SerializeToString()) < 2 * 1024 * 1024  # limits: 16 MiB


def test_an_overlong_centre_id_or_service_code_is_refused_without_being_repeated() -> None:
    long_center, long_code = "C" * 5000, "S" * 5000
    batch = events_pb2.BatchSubmission(
        batch_id="b-1",
        center_id="C1",
        items=[live(0, center_id=long_center), live(1, service_code=long_code)],
        history_items=[migrated(2, center_id=long_center)],
    )

    found = verdict_of(batch)

    assert found == {
        0: [("center_id", "must be at most 128 characters")],
        1: [("service_code", "must be at most 128 characters")],
        2: [("center_id", "must be at most 128 characters")],
    }


def test_a_migrated_item_keeps_the_fee_of_its_day_while_a_live_item_pays_todays() -> None:
    batch = events_pb2.BatchSubmission(
        batch_id="b-1",
        center_id="C1",
        items=[live(0, fee_baisa=4000)],
        history_items=[migrated(1, fee_baisa=4000), migrated(2, fee_baisa=5000)],
    )

    found = verdict_of(batch)
    stored = {doc["fee_baisa"] for _, doc in judge_batch(batch, context(), NOW).accepted}

    assert found == {0: [("fee_baisa", "must equal the catalogue fee of 5000 baisa")], 1: [], 2: []}
    assert stored == {4000, 5000}


@pytest.mark.parametrize(
    ("fee", "service_fee", "violation"),
    [
        (-1, 5000, "must not be negative"),
        (0, 5000, "must be positive: the service charges a fee"),
        (MAX_HISTORIC_FEE_BAISA + 1, 5000, f"must be at most {MAX_HISTORIC_FEE_BAISA} baisa"),
        (2**62, 5000, f"must be at most {MAX_HISTORIC_FEE_BAISA} baisa"),
        (0, 0, None),
        (MAX_HISTORIC_FEE_BAISA, 5000, None),
    ],
)
def test_a_migrated_fee_must_be_positive_for_a_service_with_a_fee_and_bounded(
    fee: int, service_fee: int, violation: str | None
) -> None:
    batch = events_pb2.BatchSubmission(
        batch_id="b-1", center_id="C1", history_items=[migrated(0, fee_baisa=fee)]
    )
    priced = replace(context(), services={"ROP-VISA": replace(SERVICE, fee_baisa=service_fee)})

    judged = judge_batch(batch, priced, NOW)

    found = [(v.field, v.description) for _, vs in judged.rejected for v in vs]
    assert found == ([] if violation is None else [("fee_baisa", violation)])


@pytest.mark.parametrize("channel", [0, 5, 99, -3])
def test_a_channel_outside_the_enum_is_refused_by_field_and_an_absent_one_is_batch(
    channel: int,
) -> None:
    # Field 4 of SubmitTransactionRequest as it arrives on the wire, outside the enum.
    channel_field = b"\x20" + varint(channel)
    item, history = live(0), migrated(1)
    item.MergeFromString(channel_field)
    history.transaction.MergeFromString(channel_field)
    assert item.channel == history.transaction.channel == channel
    batch = events_pb2.BatchSubmission(
        batch_id="b-1", center_id="C1", items=[item], history_items=[history]
    )

    judged = judge_batch(batch, context(), NOW)

    if channel == 0:
        assert [doc["channel"] for _, doc in judged.accepted] == ["BATCH", "BATCH"]
    else:
        assert [(i, [v.field for v in vs]) for i, vs in judged.rejected] == [
            (0, ["channel"]),
            (1, ["channel"]),
        ]


def test_the_fingerprint_is_keyed_and_follows_the_content_and_its_order() -> None:
    batch = events_pb2.BatchSubmission(batch_id="b-1", center_id="C1", items=[live(0), live(1)])
    reordered = events_pb2.BatchSubmission(batch_id="b-1", center_id="C1", items=[live(1), live(0)])
    reparsed = events_pb2.BatchSubmission.FromString(batch.SerializeToString())
    content = batch.SerializeToString(deterministic=True)

    assert fingerprint(reparsed, b"s") == fingerprint(batch, b"s")
    assert fingerprint(reordered, b"s") != fingerprint(batch, b"s")
    assert fingerprint(batch, b"other secret") != fingerprint(batch, b"s")
    # Not a plain hash, which anyone reading the database could test civil numbers against.
    assert fingerprint(batch, b"s") != hashlib.sha256(content).hexdigest()
