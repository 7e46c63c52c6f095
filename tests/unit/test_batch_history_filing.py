"""The batch worker files a migrated transaction where its centre was on its submit day, with its
service's terms of that day, from its registry copy's past; each batch judges with a copy of that
past taken as it starts, whatever the watch streams change meanwhile."""

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from sanad.registry_past import Dated
from tests.unit.batch_handler_support import Message, Replies, Shared, batch, handler, with_history
from tests.unit.test_worker_batch_answers import CENTER, SERVICE
from workers.batch.domain import RequestOf, request_of

REGISTERED = datetime(2025, 1, 1, tzinfo=UTC)
MOVED = datetime(2026, 6, 1, tzinfo=UTC)
IN_BAHLA = dataclasses.replace(CENTER, governorate_code="DA", wilayat_code="DA-BAH")


def worker_with_past(
    shared: Shared, replies: Replies | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """A handler whose registry copy has C1 registered in Bahla and moved to Nizwa since, and
    ROP-VISA at 4 h then; the documents it stores."""
    worker = handler(shared, replies or Replies())
    worker.snapshot.places = {"C1": (Dated(REGISTERED, IN_BAHLA), Dated(MOVED, CENTER))}
    first_terms = dataclasses.replace(SERVICE, sla_hours=4)
    worker.snapshot.terms = {"ROP-VISA": (Dated(REGISTERED, first_terms), Dated(MOVED, SERVICE))}
    stored: list[dict[str, Any]] = []
    store_chunk = worker.store.store_chunk

    async def recording(documents: Sequence[dict[str, Any]], requests: Any = ()) -> int:
        stored.extend(documents)
        return int(await store_chunk(documents, requests))

    worker.store.store_chunk = recording
    return worker, stored


async def test_history_is_filed_as_of_its_day_and_a_live_item_as_of_now() -> None:
    worker, stored = worker_with_past(Shared())
    await worker.handle(Message(with_history(batch("r-1")).SerializeToString()))
    by_request = {doc["request_id"]: doc for doc in stored}
    placed = ("governorate_code", "wilayat_code", "sla_hours")
    assert [by_request["h-1"][key] for key in placed] == ["DA", "DA-BAH", 4]  # March 2024
    assert [by_request["r-1"][key] for key in placed] == ["DA", "DA-NIZ", 48]


async def test_a_batch_judges_with_the_past_as_its_start_saw_it() -> None:
    worker, _ = worker_with_past(Shared())
    record = {"_id": "b-1", "started_at": datetime(2026, 12, 5, tzinfo=UTC)}
    context = worker._context(batch("r-1"), record, "migrator")
    worker.snapshot.places.clear()  # a registry restored from a backup: the copy replays
    worker.snapshot.terms["ROP-VISA"] = ()
    assert context.places["C1"][0].value == IN_BAHLA
    assert context.terms["ROP-VISA"][0].value.sla_hours == 4


async def test_a_free_service_s_history_at_fee_0_is_taken_though_it_charges_now() -> None:
    """Its fee is judged by the service of its day (hM's F1): free then, 5,000 baisa now."""
    replies = Replies()
    worker, stored = worker_with_past(Shared(), replies)
    free = dataclasses.replace(SERVICE, fee_baisa=0, version=1)
    worker.snapshot.terms = {"ROP-VISA": (Dated(REGISTERED, free), Dated(MOVED, SERVICE))}
    free_then = with_history(batch(batch_id="b-free"))
    free_then.history_items[0].transaction.fee_baisa = 0
    await worker.handle(Message(free_then.SerializeToString()))
    assert [doc["fee_baisa"] for doc in stored] == [0]
    # Had the service charged then, a fee of 0 would be a data error.
    worker.snapshot.terms = {}
    refused_then = with_history(batch(batch_id="b-charged"))
    refused_then.history_items[0].transaction.fee_baisa = 0
    refused_then.history_items[0].transaction.request_id = "h-9"  # not the stored row's
    await worker.handle(Message(refused_then.SerializeToString()))
    assert len(stored) == 1
    [refusal] = replies.sent[-1][1].rejected
    assert [(v.field, v.description) for v in refusal.violations] == [
        ("fee_baisa", "must be positive: the service charges a fee")
    ]


def corrected(submission: Any) -> Any:
    """The same migrated row with another outcome: completed an hour later, rated 3."""
    item = submission.history_items[0]
    item.rating = 3
    item.history[0].time.FromJsonString("2024-03-01T10:00:00Z")
    return submission


async def test_another_history_under_a_used_request_id_is_refused_not_merged() -> None:
    """A migrated row's history is its payload too (hM's F2): sent again corrected, or twice in
    one batch with two outcomes, it is refused on request_id, not answered with the first."""
    replies, shared = Replies(), Shared()
    worker, stored = worker_with_past(shared, replies)
    await worker.handle(Message(with_history(batch(batch_id="first")).SerializeToString()))
    await worker.handle(
        Message(corrected(with_history(batch(batch_id="again"))).SerializeToString())
    )
    twice = with_history(batch(batch_id="twice"))
    twice.history_items.add().CopyFrom(corrected(with_history(batch())).history_items[0])
    twice.history_items[0].transaction.request_id = "h-2"
    twice.history_items[1].transaction.request_id = "h-2"
    await worker.handle(Message(twice.SerializeToString()))
    answers = {answer.batch_id: answer for _, answer in replies.sent}
    reused = [("request_id", "was already used for another transaction")]
    [again] = answers["again"].rejected
    assert [(v.field, v.description) for v in again.violations] == reused
    assert [a.index for a in answers["twice"].accepted] == [0]
    [second] = answers["twice"].rejected
    assert (second.index, [(v.field, v.description) for v in second.violations]) == (1, reused)
    assert len(stored) == 2


@dataclasses.dataclass
class StoredRow:
    """A worker that stored one migrated row (batch "first"), its record and its request."""

    worker: Any
    stored: Sequence[Any]
    replies: Replies
    record: dict[str, Any]
    request: RequestOf


async def stored_row() -> StoredRow:
    replies, shared = Replies(), Shared()
    worker, stored = worker_with_past(shared, replies)
    await worker.handle(Message(with_history(batch(batch_id="first")).SerializeToString()))
    [record] = shared.requests.values()
    first = with_history(batch(batch_id="first"))
    request = request_of(first, worker._context(first, shared.records["first"], ""), 0)
    assert request is not None
    return StoredRow(worker, stored, replies, record, request)


async def test_a_history_items_record_reads_alike_to_an_earlier_batch_worker() -> None:
    """In a rolling upgrade an earlier worker (before session 26) runs beside this one and
    compares a record's `fingerprint` with the transaction's fields alone: it must find the
    same row sent again equal, not 'already used for another transaction' (upgrade helper: it
    refused every item this version had stored, and saved that answer under the batch id). The
    history's own fingerprint is a field of its own."""
    row = await stored_row()
    assert row.request.fingerprint != row.request.earlier
    assert (row.record["fingerprint"], row.record["history_fingerprint"]) == (
        row.request.earlier,
        row.request.fingerprint,
    )


@pytest.mark.parametrize("kept", ["earlier", "fingerprint"])
async def test_a_record_of_a_history_item_an_earlier_version_wrote_still_matches(
    kept: str,
) -> None:
    """Records without `history_fingerprint` hold the transaction's fields alone (before
    session 25) or the whole fingerprint (session 25): the same row sent again is answered with
    its transaction either way."""
    row = await stored_row()
    del row.record["history_fingerprint"]
    row.record["fingerprint"] = getattr(row.request, kept)
    await row.worker.handle(Message(with_history(batch(batch_id="later")).SerializeToString()))
    later = {answer.batch_id: answer for _, answer in row.replies.sent}["later"]
    assert [a.transaction_id for a in later.accepted] == [row.record["transaction_id"]]
    assert len(row.stored) == 1


async def test_rows_sent_again_after_the_registry_changed_get_their_stored_transactions() -> None:
    """hM's F3: a live row and a migrated one, stored, then the centre suspended; sent again
    under a new batch id, each is answered with its transaction, as intake answers a retry, not
    refused for a licence it held when it was stored."""
    replies, shared = Replies(), Shared()
    worker, stored = worker_with_past(shared, replies)
    await worker.handle(Message(with_history(batch("r-1", batch_id="first")).SerializeToString()))
    worker.snapshot.centers["C1"] = dataclasses.replace(CENTER, licence_status="SUSPENDED")
    await worker.handle(Message(with_history(batch("r-1", batch_id="again")).SerializeToString()))
    await worker.handle(Message(with_history(batch("r-2", batch_id="new")).SerializeToString()))
    answers = {answer.batch_id: answer for _, answer in replies.sent}
    first = [(a.index, a.transaction_id) for a in answers["first"].accepted]
    assert [(a.index, a.transaction_id) for a in answers["again"].accepted] == first
    assert not answers["again"].rejected
    # A new live row is refused for the licence; the migrated one, held by h-1, answered.
    [new_live] = answers["new"].rejected
    assert (new_live.index, new_live.violations[0].field) == (0, "center_id")
    assert [a.index for a in answers["new"].accepted] == [1]
    assert len(stored) == 2


async def test_a_step_without_a_time_is_refused_as_required() -> None:
    replies = Replies()
    worker, stored = worker_with_past(Shared(), replies)
    untimed = with_history(batch(batch_id="untimed"))
    untimed.history_items[0].history[0].ClearField("time")
    await worker.handle(Message(untimed.SerializeToString()))
    [refusal] = replies.sent[-1][1].rejected
    assert [(v.field, v.description) for v in refusal.violations] == [
        ("history[0].time", "is required")
    ]
    assert stored == []


async def test_a_history_s_times_are_taken_at_the_millisecond_stored() -> None:
    # Completed 4 h and 300 us after its submission, under a 4 h SLA: worked out from the
    # microseconds it was stored 14,401 s and late in the rollups, while the transaction read
    # back from its stored milliseconds showed 14,400 s, in time (batch hunt).
    worker, stored = worker_with_past(Shared())
    submission = with_history(batch(batch_id="b-us"))
    item = submission.history_items[0]
    item.submit_time.FromJsonString("2024-03-01T08:00:00.000600Z")
    item.history[0].time.FromJsonString("2024-03-01T12:00:00.000900Z")
    await worker.handle(Message(submission.SerializeToString()))
    [doc] = [doc for doc in stored if doc["request_id"] == "h-1"]
    assert doc["submit_time"] == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert doc["history"][-1]["time"] == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert doc["sla_elapsed_seconds"] == 4 * 3600
